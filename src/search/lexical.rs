//! Lexical index over terms (tantivy).
//!
//! ## Fields
//! | field | content | analysis |
//! |---|---|---|
//! | `term_id` | u64, fast | the hit's identity |
//! | `rid` | u64, indexed | `term_id >> 40`, for [`LexicalIndex::delete_release`] |
//! | `system` | string | raw, for the systems filter |
//! | `code` | [`analyzer::code_keys`] | raw (pre-normalised values) |
//! | `text` | the term | [`analyzer::words`] (BM25 with term frequencies) |
//! | `text_exact` | [`analyzer::exact_key`] | raw (pre-normalised value) |
//! | `ngram` | the term | [`analyzer::trigrams`] |
//!
//! ## Queries
//! Built programmatically from the analyzer's output — user text never reaches tantivy's query
//! parser, so `(`, `"`, `:` or `AND` are plain characters. A normal query is a disjunction of
//! - every query word on `text` (boost [`BOOST_WORD`]),
//! - the query's rarest trigrams on `ngram` (boost [`BOOST_NGRAM`]; at most
//!   [`MAX_SCORED_NGRAMS`], none found in more than [`MAX_NGRAM_DOC_SHARE`] of the terms),
//! - the exact key on `text_exact` (boost [`BOOST_EXACT`]),
//! - the whole query's code keys and each whitespace chunk's code keys on `code`
//!   ([`BOOST_CODE`], [`BOOST_CODE_CHUNK`]).
//!
//! When it finds fewer than `k` hits, it is re-run with a fuzzy clause (Levenshtein distance 1,
//! transposition = 1) for each query part of ≥ 5 characters ([`BOOST_FUZZY`]).
//! `exact = true` keeps only the exact-key and whole-query code clauses. A systems filter is a
//! non-scoring must-clause. Scores are summed BM25 contributions (≥ 0, unbounded).
//!
//! ## Limits
//! A query longer than [`MAX_QUERY_BYTES`] is rejected with [`SearchError::InvalidQuery`] (a
//! term search is not a document search; rejecting is clearer than silently truncating). Only
//! the first [`MAX_QUERY_WORDS`] distinct words and [`MAX_QUERY_NGRAMS`] distinct trigrams are
//! used. An empty/whitespace query is invalid; a query with no searchable characters (`"(((`)
//! just finds nothing. `k` is capped at [`MAX_K`].
//!
//! ## Durability
//! One [`IndexWriter`] behind a mutex buffers adds and deletes; nothing is visible or durable
//! before [`LexicalIndex::commit`], which stores the store sequence number in the commit payload
//! and reloads the reader.

use super::analyzer::{self, TrigramTokenizer, WordsTokenizer};
use super::{rid_of, Hit, SearchError, TermDoc};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STRING,
};
use tantivy::{Index, IndexReader, IndexWriter, TantivyDocument, Term};

/// Longest accepted query, in bytes: the HTTP API's 4096 characters of up to 4 bytes each. Only
/// the first words and trigrams are used (below), so the cost stays bounded.
pub const MAX_QUERY_BYTES: usize = 4 * 4096;
/// Distinct query words used.
pub const MAX_QUERY_WORDS: usize = 32;
/// Distinct query trigrams considered.
pub const MAX_QUERY_NGRAMS: usize = 128;
/// Trigrams scored per query: the rarest ones (fewest terms containing them). A trigram found
/// in many terms ("ion", "tio", "ati" in most medical terms) adds a nearly constant, tiny BM25
/// score to a large share of the index while its posting list dominates the disjunction's
/// cost; scoring the rarest ones keeps the trigram clause's discriminating part.
pub const MAX_SCORED_NGRAMS: usize = 16;
/// A trigram in more than this share of the index's terms is left out of the query (unless
/// fewer than [`MIN_SCORED_NGRAMS`] trigrams would remain).
pub const MAX_NGRAM_DOC_SHARE: f64 = 0.05;
/// Trigrams kept whatever their frequency (the rarest ones), so a query of common fragments
/// still has a trigram clause.
pub const MIN_SCORED_NGRAMS: usize = 3;
/// Largest `k` served (larger values are capped).
pub const MAX_K: usize = 10_000;
/// Boost of a word match.
pub const BOOST_WORD: f32 = 1.0;
/// Boost of the trigram clause.
pub const BOOST_NGRAM: f32 = 0.3;
/// Boost of a normalised whole-string match.
pub const BOOST_EXACT: f32 = 8.0;
/// Boost of a whole-query code match.
pub const BOOST_CODE: f32 = 10.0;
/// Boost of a code match by one chunk of a longer query.
pub const BOOST_CODE_CHUNK: f32 = 3.0;
/// Boost of a fuzzy word match (fallback only).
pub const BOOST_FUZZY: f32 = 0.5;
/// Minimum characters of a word to get a fuzzy clause.
pub const FUZZY_MIN_CHARS: usize = 5;

const WORDS_TOKENIZER: &str = "ov_words";
const TRIGRAM_TOKENIZER: &str = "ov_trigram";

/// Writer settings.
#[derive(Debug, Clone, Copy)]
pub struct LexicalOptions {
    /// Indexing threads (each gets `memory_budget / threads`, at least 15 MB).
    pub writer_threads: usize,
    /// Total indexing memory budget in bytes.
    pub memory_budget: usize,
}

impl Default for LexicalOptions {
    fn default() -> Self {
        Self {
            writer_threads: 2,
            memory_budget: 96 << 20,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    term_id: Field,
    rid: Field,
    system: Field,
    code: Field,
    text: Field,
    text_exact: Field,
    ngram: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let tokenized = |tokenizer: &str| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(IndexRecordOption::WithFreqs),
        )
    };
    let fields = Fields {
        term_id: b.add_u64_field("term_id", FAST),
        rid: b.add_u64_field("rid", INDEXED),
        system: b.add_text_field("system", STRING),
        code: b.add_text_field("code", STRING),
        text: b.add_text_field("text", tokenized(WORDS_TOKENIZER)),
        text_exact: b.add_text_field("text_exact", STRING),
        ngram: b.add_text_field("ngram", tokenized(TRIGRAM_TOKENIZER)),
    };
    (b.build(), fields)
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Payload {
    seq: u64,
}

/// The lexical index (see module docs).
pub struct LexicalIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    seq: AtomicU64,
}

impl LexicalIndex {
    /// Open the index in `dir`, creating it (and the directory) if absent, with default options.
    /// An index with another schema or unreadable metadata is an error (the caller removes the
    /// directory and rebuilds from the store).
    pub fn open_or_create(dir: &Path) -> Result<Self, SearchError> {
        Self::open_with(dir, LexicalOptions::default())
    }

    /// [`Self::open_or_create`] with explicit writer options.
    pub fn open_with(dir: &Path, options: LexicalOptions) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir)?;
        let (schema, fields) = schema();
        let index = Index::open_or_create(MmapDirectory::open(dir)?, schema)?;
        index.tokenizers().register(WORDS_TOKENIZER, WordsTokenizer);
        index
            .tokenizers()
            .register(TRIGRAM_TOKENIZER, TrigramTokenizer);
        let seq = super::commits::last_payload::<Payload>(&index)?.seq;
        let threads = options.writer_threads.max(1);
        let budget = options.memory_budget.max(threads * (15 << 20));
        let writer = super::commits::clean_writer(&index, threads, budget)?;
        // Segments stop merging at 1M terms: a merge's memory grows with the segments it
        // merges, so this bounds the indexer's memory for any number of terms at the cost of a
        // few more segments to search (one per ~1M terms).
        let mut policy = tantivy::merge_policy::LogMergePolicy::default();
        policy.set_max_docs_before_merge(1_000_000);
        writer.set_merge_policy(Box::new(policy));
        let reader = super::commits::manual_reader(&index)?;
        Ok(Self {
            reader,
            writer: Mutex::new(writer),
            fields,
            seq: AtomicU64::new(seq),
        })
    }

    /// Buffer documents for indexing (visible after [`Self::commit`]). Adding a `term_id` that is
    /// already indexed does not replace it: delete its release first.
    pub fn add(&self, docs: impl IntoIterator<Item = TermDoc>) -> Result<(), SearchError> {
        let f = self.fields;
        let writer = self.writer.lock();
        for d in docs {
            let mut doc = TantivyDocument::new();
            doc.add_u64(f.term_id, d.term_id);
            doc.add_u64(f.rid, rid_of(d.term_id));
            doc.add_text(f.system, &d.system);
            for key in analyzer::code_keys(&d.code) {
                doc.add_text(f.code, &key);
            }
            doc.add_text(f.text, &d.text);
            let exact = analyzer::exact_key(&d.text);
            if !exact.is_empty() {
                doc.add_text(f.text_exact, &exact);
            }
            doc.add_text(f.ngram, &d.text);
            writer.add_document(doc)?;
        }
        Ok(())
    }

    /// Buffer the deletion of every term of release `rid` (effective at the next commit; terms
    /// added after this call are kept).
    pub fn delete_release(&self, rid: u64) -> Result<(), SearchError> {
        self.writer
            .lock()
            .delete_term(Term::from_field_u64(self.fields.rid, rid));
        Ok(())
    }

    /// Make buffered changes durable and visible, recording the store sequence `seq` they
    /// reflect.
    pub fn commit(&self, seq: u64) -> Result<(), SearchError> {
        super::commits::commit_with_payload(&self.writer, &self.reader, &Payload { seq })?;
        self.seq.store(seq, Ordering::SeqCst);
        Ok(())
    }

    /// Store sequence recorded by the last commit (0 if none).
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Committed documents.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Search (see module docs). `systems`: only terms of these systems (exact names; an empty
    /// slice finds nothing). `exact`: only normalised whole-string or code equality.
    pub fn search(
        &self,
        query: &str,
        k: usize,
        systems: Option<&[String]>,
        exact: bool,
    ) -> Result<Vec<Hit>, SearchError> {
        if query.len() > MAX_QUERY_BYTES {
            return Err(SearchError::InvalidQuery(format!(
                "query is {} bytes; at most {MAX_QUERY_BYTES} are accepted",
                query.len()
            )));
        }
        let query = query.trim();
        if query.is_empty() {
            return Err(SearchError::InvalidQuery("query is empty".into()));
        }
        if k == 0 || systems.is_some_and(|s| s.is_empty()) {
            return Ok(Vec::new());
        }
        let k = k.min(MAX_K);
        let mut plan = Plan::new(query);
        if !exact {
            self.keep_rare_ngrams(&mut plan)?;
        }
        let mut clauses = if exact {
            plan.exact_clauses(&self.fields)
        } else {
            plan.main_clauses(&self.fields)
        };
        if clauses.is_empty() {
            return Ok(Vec::new());
        }
        let hits = self.run(&clauses, systems, k)?;
        if exact || hits.len() >= k {
            return Ok(hits);
        }
        let fuzzy = plan.fuzzy_clauses(&self.fields);
        if fuzzy.is_empty() {
            return Ok(hits);
        }
        clauses.extend(fuzzy);
        self.run(&clauses, systems, k)
    }

    /// Keeps the plan's rarest trigrams (see [`MAX_SCORED_NGRAMS`]); one dictionary lookup
    /// per trigram and segment.
    fn keep_rare_ngrams(&self, plan: &mut Plan) -> Result<(), SearchError> {
        let searcher = self.reader.searcher();
        let cap = (searcher.num_docs() as f64 * MAX_NGRAM_DOC_SHARE) as u64;
        let mut df: Vec<(u64, String)> = Vec::with_capacity(plan.ngrams.len());
        for g in plan.ngrams.drain(..) {
            let n = searcher.doc_freq(&Term::from_field_text(self.fields.ngram, &g))?;
            if n > 0 {
                df.push((n, g));
            }
        }
        df.sort();
        plan.ngrams = df
            .into_iter()
            .enumerate()
            .take_while(|(i, (n, _))| *i < MIN_SCORED_NGRAMS || *n <= cap)
            .take(MAX_SCORED_NGRAMS)
            .map(|(_, (_, g))| g)
            .collect();
        Ok(())
    }

    fn run(
        &self,
        clauses: &[(Occur, Box<dyn Query>)],
        systems: Option<&[String]>,
        k: usize,
    ) -> Result<Vec<Hit>, SearchError> {
        let main: Box<dyn Query> = Box::new(BooleanQuery::new(
            clauses.iter().map(|(o, q)| (*o, q.box_clone())).collect(),
        ));
        let query: Box<dyn Query> = match systems {
            None => main,
            Some(systems) => {
                let filter = BooleanQuery::new(
                    systems
                        .iter()
                        .map(|s| {
                            let t = Term::from_field_text(self.fields.system, s);
                            let q: Box<dyn Query> =
                                Box::new(TermQuery::new(t, IndexRecordOption::Basic));
                            (Occur::Should, q)
                        })
                        .collect(),
                );
                Box::new(BooleanQuery::new(vec![
                    (Occur::Must, main),
                    (
                        Occur::Must,
                        Box::new(ConstScoreQuery::new(Box::new(filter), 0.0)),
                    ),
                ]))
            }
        };
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(k).order_by_score())?;
        let mut columns = HashMap::new();
        let mut seen = HashSet::with_capacity(top.len());
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let column = match columns.entry(addr.segment_ord) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(
                    searcher
                        .segment_reader(addr.segment_ord)
                        .fast_fields()
                        .u64("term_id")?,
                ),
            };
            let Some(term_id) = column.first(addr.doc_id) else {
                continue;
            };
            if seen.insert(term_id) {
                hits.push(Hit { term_id, score });
            }
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.term_id.cmp(&b.term_id)));
        Ok(hits)
    }
}

/// The analysed query.
struct Plan {
    words: Vec<String>,
    parts: Vec<String>,
    ngrams: Vec<String>,
    exact: String,
    codes: Vec<String>,
    chunk_codes: Vec<String>,
}

fn distinct(v: Vec<String>, max: usize) -> Vec<String> {
    let mut seen = HashSet::new();
    v.into_iter()
        .filter(|s| seen.insert(s.clone()))
        .take(max)
        .collect()
}

fn term_query(field: Field, text: &str, boost: f32) -> (Occur, Box<dyn Query>) {
    let q = TermQuery::new(
        Term::from_field_text(field, text),
        IndexRecordOption::WithFreqs,
    );
    (Occur::Should, Box::new(BoostQuery::new(Box::new(q), boost)))
}

impl Plan {
    fn new(query: &str) -> Self {
        let codes = analyzer::code_keys(query);
        let mut chunk_codes = Vec::new();
        let chunks: Vec<&str> = query.split_whitespace().collect();
        if chunks.len() > 1 {
            for c in chunks.iter().take(MAX_QUERY_WORDS) {
                let c = c.trim_matches(|ch: char| !ch.is_alphanumeric());
                chunk_codes.extend(
                    analyzer::code_keys(c)
                        .into_iter()
                        .filter(|k| !codes.contains(k)),
                );
            }
        }
        Self {
            words: distinct(analyzer::words(query), MAX_QUERY_WORDS),
            parts: distinct(analyzer::parts(query), MAX_QUERY_WORDS),
            ngrams: distinct(analyzer::trigrams(query), MAX_QUERY_NGRAMS),
            exact: analyzer::exact_key(query),
            codes,
            chunk_codes: distinct(chunk_codes, MAX_QUERY_WORDS),
        }
    }

    fn exact_clauses(&self, f: &Fields) -> Vec<(Occur, Box<dyn Query>)> {
        let mut c = Vec::new();
        if !self.exact.is_empty() {
            c.push(term_query(f.text_exact, &self.exact, BOOST_EXACT));
        }
        for key in &self.codes {
            c.push(term_query(f.code, key, BOOST_CODE));
        }
        c
    }

    fn main_clauses(&self, f: &Fields) -> Vec<(Occur, Box<dyn Query>)> {
        let mut c = self.exact_clauses(f);
        for key in &self.chunk_codes {
            c.push(term_query(f.code, key, BOOST_CODE_CHUNK));
        }
        for w in &self.words {
            c.push(term_query(f.text, w, BOOST_WORD));
        }
        if !self.ngrams.is_empty() {
            let grams = BooleanQuery::new(
                self.ngrams
                    .iter()
                    .map(|g| term_query(f.ngram, g, 1.0))
                    .collect(),
            );
            c.push((
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(grams), BOOST_NGRAM)),
            ));
        }
        c
    }

    fn fuzzy_clauses(&self, f: &Fields) -> Vec<(Occur, Box<dyn Query>)> {
        self.parts
            .iter()
            .filter(|p| p.chars().count() >= FUZZY_MIN_CHARS)
            .map(|p| {
                let q = FuzzyTermQuery::new(Term::from_field_text(f.text, p), 1, true);
                let q: Box<dyn Query> = Box::new(BoostQuery::new(Box::new(q), BOOST_FUZZY));
                (Occur::Should, q)
            })
            .collect()
    }
}
