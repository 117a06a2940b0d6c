//! Search engine pieces: lexical (tantivy), vector (usearch) and fusion, through the public API.

use ontovec::domain::model::TermKind;
use ontovec::search::exact::{clustered, exact_top_k, random_unit};
use ontovec::search::vector::VectorScalar;
use ontovec::search::{
    fuse, FusionMethod, Hit, LexicalIndex, SearchError, TermDoc, VectorIndex, VectorOptions,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

fn tid(rid: u64, n: u64) -> u64 {
    (rid << 40) | n
}

fn doc(term_id: u64, system: &str, code: &str, text: &str) -> TermDoc {
    TermDoc {
        term_id,
        system: system.into(),
        code: code.into(),
        text: text.into(),
        kind: TermKind::Preferred,
    }
}

fn corpus() -> Vec<TermDoc> {
    vec![
        doc(
            tid(1, 1),
            "ICD10CM",
            "E11.9",
            "Type 2 diabetes mellitus without complications",
        ),
        doc(
            tid(1, 2),
            "ICD10CM",
            "E10.9",
            "Type 1 diabetes mellitus without complications",
        ),
        doc(
            tid(1, 3),
            "ICD10CM",
            "M35.00",
            "Sjogren syndrome, unspecified",
        ),
        doc(
            tid(1, 4),
            "ICD10CM",
            "C85.90",
            "Non-Hodgkin lymphoma, unspecified, unspecified site",
        ),
        doc(tid(2, 1), "HPO", "HP:0001250", "Seizure"),
        doc(tid(2, 2), "HPO", "HP:0001250", "Epileptic seizure"),
        doc(
            tid(3, 1),
            "LOINC",
            "4548-4",
            "Hemoglobin A1c/Hemoglobin.total in Blood",
        ),
        doc(tid(3, 2), "LOINC", "4548-4", "HbA1c"),
        doc(
            tid(4, 1),
            "ICD9CM",
            "250.00",
            "Diabetes mellitus without mention of complication, type II",
        ),
        doc(tid(5, 1), "UMLS", "C0086981", "Sjögren's syndrome"),
        doc(tid(5, 2), "UMLS", "C0011849", "Diabetes Mellitus"),
        doc(tid(5, 3), "UMLS", "C0004096", "Asthma"),
    ]
}

fn lexical_with_corpus() -> (tempfile::TempDir, LexicalIndex) {
    let dir = tempfile::tempdir().unwrap();
    let idx = LexicalIndex::open_or_create(&dir.path().join("lex")).unwrap();
    idx.add(corpus()).unwrap();
    idx.commit(7).unwrap();
    (dir, idx)
}

fn ids(hits: &[Hit]) -> Vec<u64> {
    hits.iter().map(|h| h.term_id).collect()
}

fn top(idx: &LexicalIndex, q: &str) -> u64 {
    let hits = idx.search(q, 5, None, false).unwrap();
    assert!(!hits.is_empty(), "no hit for {q:?}");
    hits[0].term_id
}

#[test]
fn lexical_finds_codes_accents_and_words() {
    let (_d, idx) = lexical_with_corpus();
    assert_eq!(idx.num_docs(), 12);
    assert_eq!(idx.seq(), 7);
    assert_eq!(top(&idx, "E11.9"), tid(1, 1));
    assert_eq!(top(&idx, "e119"), tid(1, 1));
    assert_eq!(top(&idx, "250.00"), tid(4, 1));
    assert_eq!(top(&idx, "HbA1c"), tid(3, 2));
    let hp = ids(&idx.search("HP:0001250", 5, None, false).unwrap());
    assert_eq!(
        &hp[..2].iter().copied().collect::<HashSet<_>>(),
        &HashSet::from([tid(2, 1), tid(2, 2)])
    );
    // accents fold both ways
    let sj: HashSet<u64> = ids(&idx.search("SJÖGREN", 5, None, false).unwrap())
        .into_iter()
        .collect();
    assert!(sj.contains(&tid(5, 1)) && sj.contains(&tid(1, 3)));
    assert_eq!(top(&idx, "sjogren's syndrome"), tid(5, 1));
    // punctuation splits words but the compound still matches best
    assert_eq!(top(&idx, "non hodgkin lymphoma"), tid(1, 4));
    assert_eq!(top(&idx, "non-hodgkin"), tid(1, 4));
    // exact whole string beats partial overlap
    assert_eq!(top(&idx, "diabetes mellitus"), tid(5, 2));
    // a code inside a longer query
    assert_eq!(top(&idx, "diabetes E10.9"), tid(1, 2));
}

#[test]
fn lexical_misspellings_and_partial_words() {
    let (_d, idx) = lexical_with_corpus();
    assert_eq!(top(&idx, "seizrue"), tid(2, 1));
    assert_eq!(top(&idx, "asthm"), tid(5, 3));
    // transposition: no trigram in common with "asthma", only the fuzzy fallback finds it
    assert_eq!(top(&idx, "ashtma"), tid(5, 3));
    let d: HashSet<u64> = ids(&idx.search("diabetis", 10, None, false).unwrap())
        .into_iter()
        .collect();
    assert!(d.contains(&tid(5, 2)) && d.contains(&tid(1, 1)));
}

#[test]
fn lexical_exact_mode() {
    let (_d, idx) = lexical_with_corpus();
    let h = idx
        .search(
            "type 2 DIABETES mellitus, without complications",
            10,
            None,
            true,
        )
        .unwrap();
    assert_eq!(ids(&h), [tid(1, 1)]);
    assert!(idx
        .search("type 2 diabetes", 10, None, true)
        .unwrap()
        .is_empty());
    assert_eq!(
        ids(&idx.search("e11.9", 10, None, true).unwrap()),
        [tid(1, 1)]
    );
    let hp = idx.search("HP:0001250", 10, None, true).unwrap();
    assert_eq!(hp.len(), 2);
    assert!(idx.search("seizrue", 10, None, true).unwrap().is_empty());
}

#[test]
fn lexical_system_filter() {
    let (_d, idx) = lexical_with_corpus();
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(idx
        .search("diabetes", 10, Some(&s(&["HPO"])), false)
        .unwrap()
        .is_empty());
    assert_eq!(
        ids(&idx
            .search("diabetes", 10, Some(&s(&["ICD9CM"])), false)
            .unwrap()),
        [tid(4, 1)]
    );
    let two = idx
        .search("diabetes", 10, Some(&s(&["ICD9CM", "UMLS"])), false)
        .unwrap();
    assert_eq!(two.len(), 2);
    assert_eq!(two[0].term_id, tid(5, 2));
    assert!(idx
        .search("diabetes", 10, Some(&[]), false)
        .unwrap()
        .is_empty());
    // the filter does not change scores
    let all = idx.search("diabetes mellitus", 10, None, false).unwrap();
    let umls = idx
        .search("diabetes mellitus", 10, Some(&s(&["UMLS"])), false)
        .unwrap();
    let score = |v: &[Hit], id| v.iter().find(|h| h.term_id == id).map(|h| h.score);
    assert_eq!(score(&all, tid(5, 2)), score(&umls, tid(5, 2)));
}

#[test]
fn lexical_bad_input_is_handled() {
    let (_d, idx) = lexical_with_corpus();
    for q in [
        "\"(((",
        "a:b AND (c OR \"d",
        "*",
        "~~~ ^2 [1 TO 5]",
        ")))))",
        "\\",
        "日本語",
        "💉 insulin",
    ] {
        let r = idx.search(q, 10, None, false);
        assert!(r.is_ok(), "{q:?}: {r:?}");
        assert!(idx.search(q, 10, None, true).is_ok());
    }
    assert!(matches!(
        idx.search("", 10, None, false),
        Err(SearchError::InvalidQuery(_))
    ));
    assert!(matches!(
        idx.search(" \t\n", 10, None, false),
        Err(SearchError::InvalidQuery(_))
    ));
    let huge = "diabetes ".repeat(100 * 1024 / 9);
    assert!(matches!(
        idx.search(&huge, 10, None, false),
        Err(SearchError::InvalidQuery(_))
    ));
    // long but accepted: many distinct words
    let long: String = (0..500).map(|i| format!("w{i} ")).collect();
    assert!(idx.search(&long[..2000], 10, None, false).is_ok());
    assert!(idx.search("diabetes", 0, None, false).unwrap().is_empty());
    assert!(idx.search("diabetes", usize::MAX, None, false).is_ok());
}

#[test]
fn lexical_delete_release_commit_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lex");
    {
        let idx = LexicalIndex::open_or_create(&path).unwrap();
        assert_eq!(idx.seq(), 0);
        idx.add(corpus()).unwrap();
        // not visible before commit
        assert_eq!(idx.num_docs(), 0);
        idx.commit(3).unwrap();
        idx.delete_release(1).unwrap();
        assert_eq!(idx.num_docs(), 12);
        // re-add release 1 after the delete: kept
        idx.add(vec![doc(
            tid(1, 9),
            "ICD10CM",
            "E11.9",
            "Diabetes type two",
        )])
        .unwrap();
        idx.commit(4).unwrap();
        assert_eq!(idx.num_docs(), 9);
        assert_eq!(idx.seq(), 4);
        assert_eq!(top(&idx, "E11.9"), tid(1, 9));
    }
    let idx = LexicalIndex::open_or_create(&path).unwrap();
    assert_eq!(idx.seq(), 4);
    assert_eq!(idx.num_docs(), 9);
    assert_eq!(top(&idx, "seizure"), tid(2, 1));
    assert!(!ids(&idx.search("complications", 10, None, false).unwrap()).contains(&tid(1, 1)));
    // uncommitted work is lost on reopen
    idx.add(vec![doc(tid(9, 1), "X", "X1", "volatile")])
        .unwrap();
    drop(idx);
    let idx = LexicalIndex::open_or_create(&path).unwrap();
    assert_eq!(idx.num_docs(), 9);
}

// ---------------------------------------------------------------- vectors

#[test]
fn vector_upsert_replace_remove_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let idx = VectorIndex::open_or_create(&dir.path().join("m.usearch"), 8).unwrap();
    let e = |i: usize| {
        let mut v = vec![0.0; 8];
        v[i] = 1.0;
        v
    };
    idx.upsert(&[(tid(1, 1), e(0)), (tid(1, 2), e(1)), (tid(2, 1), e(2))])
        .unwrap();
    assert_eq!(idx.len(), 3);
    let h = idx.search(&e(0), 1, None).unwrap();
    assert_eq!(h[0].term_id, tid(1, 1));
    assert!((h[0].score - 1.0).abs() < 1e-3);
    // replace: same key, new vector
    idx.upsert(&[(tid(1, 1), e(3))]).unwrap();
    assert_eq!(idx.len(), 3);
    let h = idx.search(&e(3), 1, None).unwrap();
    assert_eq!(h[0].term_id, tid(1, 1));
    assert!(idx
        .search(&e(0), 3, None)
        .unwrap()
        .iter()
        .all(|h| h.score < 0.5));
    // a key twice in one batch: the last one wins
    idx.upsert(&[(tid(1, 2), e(5)), (tid(1, 2), e(6))]).unwrap();
    assert_eq!(idx.len(), 3);
    assert_eq!(idx.search(&e(6), 1, None).unwrap()[0].term_id, tid(1, 2));
    idx.upsert(&[(tid(1, 2), e(1))]).unwrap();
    // unnormalised input is fine; opposite vector scores -1
    let h = idx
        .search(&e(2).iter().map(|x| -3.0 * x).collect::<Vec<_>>(), 3, None)
        .unwrap();
    let opp = h.iter().find(|h| h.term_id == tid(2, 1)).unwrap();
    assert!((opp.score + 1.0).abs() < 1e-3);
    // filter
    let only_rid2 = |k: u64| k >> 40 == 2;
    assert_eq!(
        ids(&idx.search(&e(0), 3, Some(&only_rid2)).unwrap()),
        [tid(2, 1)]
    );
    // remove release
    idx.remove_release(1).unwrap();
    assert_eq!(idx.len(), 1);
    assert_eq!(ids(&idx.search(&e(3), 5, None).unwrap()), [tid(2, 1)]);
    // bad input
    assert!(matches!(
        idx.search(&[1.0; 3], 1, None),
        Err(SearchError::InvalidQuery(_))
    ));
    assert!(matches!(
        idx.search(&[0.0; 8], 1, None),
        Err(SearchError::InvalidQuery(_))
    ));
    assert!(matches!(
        idx.search(&[f32::NAN; 8], 1, None),
        Err(SearchError::InvalidQuery(_))
    ));
    assert!(matches!(
        idx.upsert(&[(1, vec![1.0; 7])]),
        Err(SearchError::InvalidQuery(_))
    ));
    assert!(matches!(
        idx.upsert(&[(1, e(0)), (2, vec![f32::INFINITY; 8])]),
        Err(SearchError::InvalidQuery(_))
    ));
    assert_eq!(idx.len(), 1, "a rejected batch changes nothing");
    assert!(idx.search(&e(0), 0, None).unwrap().is_empty());
}

#[test]
fn vector_save_reopen_and_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors").join("m.usearch");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let data: Vec<(u64, Vec<f32>)> = (0..500)
        .map(|i| (tid(1 + i % 2, i), random_unit(&mut rng, 16)))
        .collect();
    let q = random_unit(&mut rng, 16);
    let before = {
        let idx = VectorIndex::open_or_create(&path, 16).unwrap();
        idx.save(1).unwrap(); // an empty index saves too
        idx.upsert(&data).unwrap();
        idx.save(42).unwrap();
        assert_eq!(idx.seq(), 42);
        idx.search(&q, 10, None).unwrap()
    };
    let idx = VectorIndex::open_or_create(&path, 16).unwrap();
    assert_eq!((idx.seq(), idx.len()), (42, 500));
    assert_eq!(ids(&idx.search(&q, 10, None).unwrap()), ids(&before));
    // still writable after load, and removal by release still works (keys were persisted)
    idx.remove_release(2).unwrap();
    assert_eq!(idx.len(), 250);
    idx.upsert(&[(tid(3, 1), q.clone())]).unwrap();
    assert_eq!(idx.search(&q, 1, None).unwrap()[0].term_id, tid(3, 1));
    idx.save(43).unwrap();
    drop(idx);
    assert_eq!(VectorIndex::open_or_create(&path, 16).unwrap().len(), 251);

    // another dimension: fresh
    let other = VectorIndex::open_or_create(&path, 32).unwrap();
    assert_eq!((other.seq(), other.len()), (0, 0));
    drop(other);
    // corrupted index file: fresh
    std::fs::write(&path, b"garbage").unwrap();
    let idx = VectorIndex::open_or_create(&path, 16).unwrap();
    assert_eq!((idx.seq(), idx.len()), (0, 0));
    idx.upsert(&data[..10]).unwrap();
    idx.save(5).unwrap();
    drop(idx);
    // missing sidecar: fresh
    let mut json = path.as_os_str().to_owned();
    json.push(".json");
    std::fs::remove_file(&json).unwrap();
    assert_eq!(VectorIndex::open_or_create(&path, 16).unwrap().seq(), 0);
    // deleted index file: fresh
    std::fs::remove_file(&path).unwrap();
    assert_eq!(VectorIndex::open_or_create(&path, 16).unwrap().len(), 0);
}

fn recall_at_10(
    idx: &VectorIndex,
    data: &[(u64, Vec<f32>)],
    queries: &[Vec<f32>],
    filter: Option<&dyn Fn(u64) -> bool>,
) -> f64 {
    let mut found = 0;
    let mut total = 0;
    for q in queries {
        let truth = exact_top_k(data, q, 10, |id| filter.is_none_or(|f| f(id)));
        let got: HashSet<u64> = ids(&idx.search(q, 10, filter).unwrap())
            .into_iter()
            .collect();
        found += truth.iter().filter(|t| got.contains(t)).count();
        total += truth.len();
    }
    found as f64 / total as f64
}

/// 5k random 384-d vectors, clustered (like real embeddings) at default settings, and uniform
/// noise (HNSW's worst case) at ef_search 512; plain and with a 5 %-selective filter.
#[test]
fn vector_recall_vs_brute_force() {
    const N: usize = 5000;
    const DIM: usize = 384;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let sel = |k: u64| k >> 40 == 3; // one release in 20
    for uniform in [false, true] {
        let vecs = if uniform {
            (0..N + 40).map(|_| random_unit(&mut rng, DIM)).collect()
        } else {
            clustered(&mut rng, N + 40, DIM, 100)
        };
        let data: Vec<(u64, Vec<f32>)> = vecs[..N]
            .iter()
            .enumerate()
            .map(|(i, v)| (tid(1 + i as u64 % 20, i as u64), v.clone()))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let idx = VectorIndex::open_or_create(&dir.path().join("r.usearch"), DIM).unwrap();
        for chunk in data.chunks(512) {
            idx.upsert(chunk).unwrap();
        }
        if uniform {
            idx.set_expansion_search(512);
        }
        let plain = recall_at_10(&idx, &data, &vecs[N..], None);
        let filtered = recall_at_10(&idx, &data, &vecs[N..], Some(&sel));
        eprintln!(
            "recall@10 5k x 384 uniform={uniform}: plain {plain:.4}, filtered(5%) {filtered:.4}"
        );
        assert!(plain >= 0.98, "uniform={uniform} recall {plain}");
        assert!(
            filtered >= 0.98,
            "uniform={uniform} filtered recall {filtered}"
        );
    }
}

/// f16 and i8 indexes (usearch's SIMD kernels) against the exact f32 top 10 on clustered
/// 384-d vectors, plain and filtered; stored vectors come back close to the input; an index
/// reopened with another dtype starts empty (it is rebuilt, never read as the other type).
#[test]
fn vector_compact_dtypes_keep_recall_and_never_mix() {
    const N: usize = 3000;
    const DIM: usize = 384;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let vecs = clustered(&mut rng, N + 40, DIM, 60);
    let data: Vec<(u64, Vec<f32>)> = vecs[..N]
        .iter()
        .enumerate()
        .map(|(i, v)| (tid(1 + i as u64 % 20, i as u64), v.clone()))
        .collect();
    let sel = |k: u64| k >> 40 == 3;
    for scalar in [VectorScalar::F16, VectorScalar::I8] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.usearch");
        let idx = VectorIndex::open_with(&path, DIM, VectorOptions::for_scalar(scalar)).unwrap();
        for chunk in data.chunks(512) {
            idx.upsert(chunk).unwrap();
        }
        let plain = recall_at_10(&idx, &data, &vecs[N..], None);
        let filtered = recall_at_10(&idx, &data, &vecs[N..], Some(&sel));
        eprintln!("{scalar}: recall@10 plain {plain:.4}, filtered {filtered:.4}");
        assert!(
            plain >= 0.98 && filtered >= 0.98,
            "{scalar}: {plain} {filtered}"
        );
        let (key, v) = &data[7];
        let stored = idx.get(*key).unwrap().unwrap();
        assert!(
            ontovec::util::vector::cosine(&stored, v) > 0.995,
            "{scalar}"
        );
        let own = idx.search(v, 1, None).unwrap()[0];
        assert_eq!(own.term_id, *key);
        assert!(own.score > 0.995, "{scalar}: {}", own.score);
        idx.save(3).unwrap();
        drop(idx);
        let again = VectorIndex::open_with(&path, DIM, VectorOptions::for_scalar(scalar)).unwrap();
        assert_eq!((again.seq(), again.len()), (3, N));
        drop(again);
        let other = VectorIndex::open_with(&path, DIM, VectorOptions::default()).unwrap();
        assert_eq!((other.seq(), other.len()), (0, 0), "{scalar} read as f32");
    }
}

#[test]
fn vector_concurrent_searches_beyond_thread_slots() {
    let dir = tempfile::tempdir().unwrap();
    let opts = VectorOptions {
        threads: 2,
        ..VectorOptions::default()
    };
    let idx = VectorIndex::open_with(&dir.path().join("c.usearch"), 16, opts).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let data: Vec<(u64, Vec<f32>)> = (0..300).map(|i| (i, random_unit(&mut rng, 16))).collect();
    idx.upsert(&data).unwrap();
    // the graph is approximate and a concurrent insert may re-link a node for a moment, so each
    // search must return well-formed hits and the exact vector must come first nearly always
    // (not always: CI once saw one node missed while upserts ran)
    let exact = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..12 {
            let idx = &idx;
            let data = &data;
            let exact = &exact;
            s.spawn(move || {
                for i in 0..50 {
                    let (key, v) = &data[(t * 50 + i) % data.len()];
                    let h = idx.search(v, 5, None).unwrap();
                    assert_eq!(h.len(), 5);
                    assert!(h.windows(2).all(|w| w[0].score >= w[1].score), "{h:?}");
                    assert!(h
                        .iter()
                        .all(|x| x.term_id < 300 || (1000..1020).contains(&x.term_id)));
                    if h[0].term_id == *key {
                        exact.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
        let idx = &idx;
        s.spawn(move || {
            let mut rng = ChaCha8Rng::seed_from_u64(4);
            for i in 0..20 {
                idx.upsert(&[(1000 + i, random_unit(&mut rng, 16))])
                    .unwrap();
            }
        });
    });
    let exact = exact.into_inner();
    assert!(
        exact >= 600 * 95 / 100,
        "exact vector first in {exact} of 600 searches"
    );
    assert_eq!(idx.len(), 320);
}

// ---------------------------------------------------------------- fusion

#[test]
fn fusion_rrf_and_weighted_by_hand() {
    let h = |v: &[(u64, f32)]| {
        v.iter()
            .map(|&(term_id, score)| Hit { term_id, score })
            .collect::<Vec<_>>()
    };
    let lex = h(&[(10, 12.0), (20, 8.0), (30, 4.0)]);
    let vec = h(&[(30, 0.9), (40, 0.7), (10, 0.5)]);
    let r = fuse(&lex, &vec, FusionMethod::Rrf { k: 60.0 }, 3);
    // 10: 1/61+1/63 = 0.032266 ; 30: 1/63+1/61 (same) ; 20: 1/62 ; 40: 1/62
    assert_eq!(ids_f(&r), [10, 30, 20]);
    assert!((r[0].score - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-7);
    assert_eq!((r[1].lexical_rank, r[1].vector_rank), (Some(3), Some(1)));
    let w = fuse(&lex, &vec, FusionMethod::Weighted { alpha: 0.5 }, 10);
    // lex norm: 10→1, 20→0.5, 30→0 ; vec norm: 30→1, 40→0.5, 10→0
    // 10: 0.5 ; 20: 0.25 ; 30: 0.5 ; 40: 0.25
    assert_eq!(ids_f(&w), [10, 30, 20, 40]);
    let want = [0.5, 0.5, 0.25, 0.25];
    for (f, s) in w.iter().zip(want) {
        assert!((f.score - s).abs() < 1e-6);
    }
    assert_eq!(w[3].lexical_rank, None);
    assert_eq!(w[3].vector_rank, Some(2));
}

fn ids_f(v: &[ontovec::search::FusedHit]) -> Vec<u64> {
    v.iter().map(|h| h.term_id).collect()
}

fn hit_list() -> impl Strategy<Value = Vec<Hit>> {
    prop::collection::vec(
        (0u64..40, prop_oneof![any::<f32>(), -5.0f32..5.0])
            .prop_map(|(term_id, score)| Hit { term_id, score }),
        0..30,
    )
}

fn method() -> impl Strategy<Value = FusionMethod> {
    prop_oneof![
        any::<f32>().prop_map(|k| FusionMethod::Rrf { k }),
        (0.0f32..100.0).prop_map(|k| FusionMethod::Rrf { k }),
        any::<f32>().prop_map(|alpha| FusionMethod::Weighted { alpha }),
        (0.0f32..=1.0).prop_map(|alpha| FusionMethod::Weighted { alpha }),
    ]
}

proptest! {
    #[test]
    fn fusion_never_panics_sorted_bounded(l in hit_list(), v in hit_list(), m in method(), k in 0usize..50) {
        let out = fuse(&l, &v, m, k);
        prop_assert!(out.len() <= k);
        let distinct: HashSet<u64> = l.iter().chain(&v).map(|h| h.term_id).collect();
        prop_assert_eq!(out.len(), k.min(distinct.len()));
        for w in out.windows(2) {
            prop_assert_eq!(
                w[0].score.total_cmp(&w[1].score).then(w[1].term_id.cmp(&w[0].term_id)),
                std::cmp::Ordering::Greater
            );
        }
        for f in &out {
            prop_assert!(f.score.is_finite());
            prop_assert!(f.lexical_rank.is_some() || f.vector_rank.is_some());
            if let Some(r) = f.lexical_rank { prop_assert_eq!(l[r - 1].term_id, f.term_id); }
            if let Some(r) = f.vector_rank { prop_assert_eq!(v[r - 1].term_id, f.term_id); }
        }
    }
}
