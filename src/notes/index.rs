//! The lexical index over notes (tantivy), derived from the store's `notes` trees.
//!
//! One document per note: `nid` (u64, fast + indexed) and `text` analysed with the same word
//! analyzer as terms ([`crate::search::analyzer::words`]: folding, codes kept whole), BM25 with
//! term frequencies. Queries are built programmatically (no query parser): a disjunction of the
//! query's distinct words. The commit payload records the next nid the index holds
//! (`next_nid`), so a restart catches up from there; a crash between a commit and its payload is
//! impossible (they are one commit).

use crate::search::analyzer::{self, WordsTokenizer};
use crate::search::{commits, Hit, SearchError};
use parking_lot::Mutex;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED,
};
use tantivy::{Index, IndexReader, IndexWriter, TantivyDocument, Term};

const WORDS: &str = "ov_words";
/// Distinct query words used.
pub const MAX_QUERY_WORDS: usize = 64;

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Payload {
    next_nid: u64,
}

/// BM25 over note texts.
pub struct NotesLexical {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    nid: Field,
    text: Field,
    next_nid: AtomicU64,
}

impl NotesLexical {
    /// Open or create the index in `dir`.
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir)?;
        let mut b = Schema::builder();
        let nid = b.add_u64_field("nid", FAST | INDEXED);
        let text = b.add_text_field(
            "text",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(WORDS)
                    .set_index_option(IndexRecordOption::WithFreqs),
            ),
        );
        let index = Index::open_or_create(MmapDirectory::open(dir)?, b.build())?;
        index.tokenizers().register(WORDS, WordsTokenizer);
        let next = commits::last_payload::<Payload>(&index)?.next_nid;
        let writer = commits::clean_writer(&index, 1, 32 << 20)?;
        let reader = commits::manual_reader(&index)?;
        Ok(Self {
            reader,
            writer: Mutex::new(writer),
            nid,
            text,
            next_nid: AtomicU64::new(next),
        })
    }

    /// One past the highest nid committed.
    pub fn next_nid(&self) -> u64 {
        self.next_nid.load(Ordering::SeqCst)
    }

    /// Buffer a note (visible after [`Self::commit`]).
    pub fn add(&self, nid: u64, text: &str) -> Result<(), SearchError> {
        let mut doc = TantivyDocument::new();
        doc.add_u64(self.nid, nid);
        doc.add_text(self.text, text);
        self.writer.lock().add_document(doc)?;
        Ok(())
    }

    /// Drop everything buffered and committed (rebuilds).
    pub fn clear(&self) -> Result<(), SearchError> {
        self.writer.lock().delete_all_documents()?;
        self.commit(0)
    }

    /// Make buffered notes durable and visible, recording `next_nid`.
    pub fn commit(&self, next_nid: u64) -> Result<(), SearchError> {
        commits::commit_with_payload(&self.writer, &self.reader, &Payload { next_nid })?;
        self.next_nid.store(next_nid, Ordering::SeqCst);
        Ok(())
    }

    /// Best `k` notes for `query` (BM25; nid in `Hit::term_id`).
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, SearchError> {
        let mut words = analyzer::words(query);
        let mut seen = std::collections::HashSet::new();
        words.retain(|w| seen.insert(w.clone()));
        words.truncate(MAX_QUERY_WORDS);
        if words.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = words
            .iter()
            .map(|w| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(self.text, w),
                    IndexRecordOption::WithFreqs,
                ));
                (Occur::Should, q)
            })
            .collect();
        let searcher = self.reader.searcher();
        let top = searcher.search(
            &BooleanQuery::new(clauses),
            &TopDocs::with_limit(k).order_by_score(),
        )?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let col = searcher
                .segment_reader(addr.segment_ord)
                .fast_fields()
                .u64("nid")?;
            if let Some(nid) = col.first(addr.doc_id) {
                hits.push(Hit {
                    term_id: nid,
                    score,
                });
            }
        }
        Ok(hits)
    }
}
