//! Tests of `coding`.

use super::*;

/// A test manifest: 128-token windows over ICD-10-CM, with or without segments.
fn manifest(segments: Option<SegmentConfig>, blend: f32) -> CodingManifest {
    CodingManifest {
        window: WindowConfig::for_max_len(128),
        codes_model: "x-codes".into(),
        threshold: 0.5,
        systems: vec!["ICD10CM".into()],
        segments,
        attn_temperature: 0.05,
        diversity: Diversity::default(),
        blend,
    }
}

/// Writes the manifest next to the tensors already in `dir` and loads the model back.
fn load_with(dir: &Path, m: &CodingManifest) -> CodingModel {
    std::fs::write(
        dir.join("ontovec.json"),
        serde_json::json!({"kind": "notes", "notecontrast": m}).to_string(),
    )
    .unwrap();
    CodingModel::load(dir).unwrap().unwrap()
}

#[test]
fn files_round_trip_and_rank() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::Cpu;
    let eye = Tensor::eye(2, candle_core::DType::F32, &dev).unwrap();
    let b = Tensor::zeros(2, candle_core::DType::F32, &dev).unwrap();
    let cv = Tensor::new(&[[1f32, 0.], [0., 1.], [0.6, 0.8]], &dev).unwrap();
    let codes = vec![
        ConceptRef::new("ICD10CM", "E11.9"),
        ConceptRef::new("ICD10CM", "I10"),
        ConceptRef::new("ICD9CM", "401.9"),
    ];
    let t = CodingTensors {
        head: (&eye, &b),
        code_vectors: &cv,
        segments: None,
        blend: None,
    };
    CodingModel::write(dir.path(), &codes, &t).unwrap();
    assert!(CodingModel::load(dir.path()).unwrap().is_none());
    let m = manifest(None, 0.0);
    let c = load_with(dir.path(), &m);
    let v = c.project(&[0.0, 2.0]);
    let r = c.rank(&[], &v, None, 2);
    assert_eq!(r[0].code.code, "I10");
    assert_eq!(r[1].code.code, "401.9");
    let r = c.rank(&[], &v, Some("ICD9CM"), 5);
    assert_eq!(r.len(), 1);
}

#[test]
fn segment_scoring_is_a_gated_soft_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::Cpu;
    let eye = Tensor::eye(2, candle_core::DType::F32, &dev).unwrap();
    let zero = Tensor::zeros(2, candle_core::DType::F32, &dev).unwrap();
    let cv = Tensor::new(&[[1f32, 0.], [0., 1.], [0.6, 0.8]], &dev).unwrap();
    // the gate silences segments along the second axis
    let gw = Tensor::new(&[0f32, -50.], &dev).unwrap();
    let gb = Tensor::new(&[10f32], &dev).unwrap();
    let codes = vec![
        ConceptRef::new("ICD10CM", "E11.9"),
        ConceptRef::new("ICD10CM", "I10"),
        ConceptRef::new("ICD10CM", "E78.5"),
    ];
    let t = CodingTensors {
        head: (&eye, &zero),
        code_vectors: &cv,
        segments: Some([&eye, &zero, &gw, &gb]),
        blend: None,
    };
    let m = manifest(Some(SegmentConfig::default()), 0.0);
    CodingModel::write(dir.path(), &codes, &t).unwrap();
    let c = load_with(dir.path(), &m);
    assert!(c.segment_config().is_some());
    let mem = CodingModel::from_tensors(m, codes, &t).unwrap();
    let segs = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
    let s = c.score_all(&segs, &[0.0, 1.0]);
    assert_eq!(s, mem.score_all(&segs, &[0.0, 1.0]));
    // E11.9 matches the open segment fully; I10 only matches the gated one
    assert!((s[0] - 1.0).abs() < 0.01, "{s:?}");
    assert!(s[1] < 0.05, "{s:?}");
    assert!(s[2] > 0.55 && s[2] < 0.65, "{s:?}");
    let r = c.rank(&segs, &[0.0, 1.0], None, 1);
    assert_eq!(r[0].code.code, "E11.9");
    // E11.9's score comes from the open segment; I10's from the gated one alone
    let sh = c.shares(&segs, &[0, 1]);
    assert!(sh[0][0].1 > 0.99, "{sh:?}");
    assert!((sh[1].iter().map(|x| x.1).sum::<f32>() - 1.0).abs() < 1e-5);
    // no segments: the pooled vector decides
    assert_eq!(c.rank(&[], &[0.0, 1.0], None, 1)[0].code.code, "I10");
}

#[test]
fn descriptions_blend_in_per_code_and_survive_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::Cpu;
    let eye = Tensor::eye(2, candle_core::DType::F32, &dev).unwrap();
    let zero = Tensor::zeros(2, candle_core::DType::F32, &dev).unwrap();
    let open_w = Tensor::zeros(2, candle_core::DType::F32, &dev).unwrap();
    let open_b = Tensor::new(&[30f32], &dev).unwrap();
    // trained vectors point away from the segment, descriptions along it
    let cv = Tensor::new(&[[0f32, 1.], [0., 1.]], &dev).unwrap();
    let dv = Tensor::new(&[[1f32, 0.], [1., 0.]], &dev).unwrap();
    // a well-trained code (weight 0) and a rare one (weight 0.3)
    let w = Tensor::new(&[0f32, 0.3], &dev).unwrap();
    let codes = vec![
        ConceptRef::new("ICD10CM", "I10"),
        ConceptRef::new("ICD10CM", "I1A.0"),
    ];
    let t = CodingTensors {
        head: (&eye, &zero),
        code_vectors: &cv,
        segments: Some([&eye, &zero, &open_w, &open_b]),
        blend: Some((&dv, &w)),
    };
    let m = manifest(Some(SegmentConfig::default()), 0.3);
    CodingModel::write(dir.path(), &codes, &t).unwrap();
    let c = load_with(dir.path(), &m);
    let segs = vec![vec![1.0, 0.0]];
    let (s, best) = c.score_best(&segs, &[1.0, 0.0]);
    assert!(s[0].abs() < 1e-3, "{s:?}");
    assert!((s[1] - 0.3).abs() < 1e-3, "(1 - 0.3)·0 + 0.3·1: {s:?}");
    assert_eq!(best, vec![0, 0]);
    let mem = CodingModel::from_tensors(m, codes, &t).unwrap();
    assert_eq!(mem.score_all(&segs, &[1.0, 0.0]), s);
    // the evidence shares read the same blended logits (0.7 through the trained side wins)
    let two = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
    let sh = c.shares(&two, &[1]);
    let (s2, best2) = c.score_best(&two, &[1.0, 0.0]);
    assert!(sh[0][1].1 > 0.99, "0.7 vs 0.3: {sh:?}");
    assert_eq!(best2[1], 1);
    assert!((s2[1] - 0.7).abs() < 0.01, "{s2:?}");
}
