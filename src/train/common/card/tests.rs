//! The pictures are well-formed SVG with the series and labels they should have.

use super::*;
use std::collections::BTreeMap;

/// Element names (with counts) and every text node of an SVG document; panics when it is not
/// well-formed XML.
fn parse(svg: &str) -> (BTreeMap<String, usize>, Vec<String>) {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(svg);
    r.config_mut().check_end_names = true;
    let (mut names, mut texts, mut depth, mut root) = (BTreeMap::new(), Vec::new(), 0i64, None);
    loop {
        match r.read_event().expect("well-formed XML") {
            Event::Start(e) => {
                let n = String::from_utf8_lossy(e.name().as_ref()).to_string();
                root.get_or_insert(n.clone());
                *names.entry(n).or_insert(0) += 1;
                depth += 1;
            }
            Event::Empty(e) => {
                let n = String::from_utf8_lossy(e.name().as_ref()).to_string();
                *names.entry(n).or_insert(0) += 1;
            }
            Event::End(_) => depth -= 1,
            Event::Text(t) => texts.push(t.unescape().unwrap().trim().to_string()),
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0, "every element closed");
    assert_eq!(root.as_deref(), Some("svg"));
    (names, texts)
}

fn history() -> (Vec<(u64, f32, f32)>, Vec<DevPoint>) {
    let loss = (1..=60u64)
        .map(|s| (s, 2.0 / (s as f32).sqrt(), 1.0 / s as f32))
        .collect();
    let dev = (1..=3u64)
        .map(|i| DevPoint {
            step: i * 20,
            metrics: [
                ("auc_mean".to_string(), 0.6 + 0.1 * i as f64),
                ("acc@1".to_string(), 0.3 + 0.05 * i as f64),
            ]
            .into_iter()
            .collect(),
        })
        .collect();
    (loss, dev)
}

#[test]
fn curves_have_both_panels_with_their_series() {
    let (loss, dev) = history();
    let c = Curves::from_logs("run x", ["tree", "synonym"], &loss, &dev, "held-out");
    assert_eq!(c.loss.len(), 2);
    assert_eq!(c.dev.len(), 2);
    let (names, texts) = parse(&render_curves(&c).unwrap());
    // per loss: raw + moving mean; per dev metric: one line (+ circles); legend samples
    assert!(
        names.get("polyline").copied().unwrap_or(0) >= 6,
        "{names:?}"
    );
    assert!(names.get("circle").copied().unwrap_or(0) >= 6, "{names:?}");
    for want in [
        "run x",
        "step",
        "loss",
        "metric",
        "held-out",
        "training loss per step",
        "tree (mean of 2 steps)",
        "synonym (mean of 2 steps)",
        "auc_mean",
        "acc@1",
    ] {
        assert!(
            texts.iter().any(|t| t == want),
            "no text {want:?} in {texts:?}"
        );
    }
}

#[test]
fn curves_without_dev_points_have_one_panel() {
    let (loss, _) = history();
    let c = Curves::from_logs("run y", ["loss", "unused"], &loss[..5], &[], "dev");
    let (_, texts) = parse(&render_curves(&c).unwrap());
    assert!(texts.iter().any(|t| t == "loss"));
    assert!(!texts.iter().any(|t| t == "dev"));
}

#[test]
fn bars_show_every_group_series_and_value() {
    let b = Bars {
        title: "held-out: base vs trained".into(),
        series: vec!["base".into(), "trained".into()],
        groups: vec![
            ("ICD10CM · AUC mean".into(), vec![0.71, 0.84]),
            ("ICD10CM · acc@1".into(), vec![0.25, f64::NAN]),
        ],
    };
    let (names, texts) = parse(&render_bars(&b).unwrap());
    // three finite bars plus two legend swatches (and the background)
    assert!(names.get("rect").copied().unwrap_or(0) >= 5, "{names:?}");
    for want in [
        "held-out: base vs trained",
        "ICD10CM · AUC mean",
        "ICD10CM · acc@1",
        "base",
        "trained",
        "0.710",
        "0.840",
        "0.250",
        "–",
    ] {
        assert!(
            texts.iter().any(|t| t == want),
            "no text {want:?} in {texts:?}"
        );
    }
}

#[test]
fn card_embeds_pictures_and_drops_stale_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (loss, dev) = history();
    let c = Curves::from_logs("t", ["a", "b"], &loss, &dev, "dev");
    let manifest = serde_json::json!({"name": "t"});
    let card = Card {
        manifest: &manifest,
        markdown: "# t\n\nintro\n\n## Data\n\nrows\n".into(),
        curves: Some(&c),
        bars: None,
    };
    std::fs::write(dir.path().join(EVAL_FILE), "stale").unwrap();
    write_card(dir.path(), &card).unwrap();
    let md = std::fs::read_to_string(dir.path().join(CARD_FILE)).unwrap();
    assert!(
        md.contains("intro\n\n![training curves") && md.contains("(curves.svg)\n\n## Data"),
        "{md}"
    );
    assert!(!md.contains("eval.svg"));
    assert!(dir.path().join(CURVES_FILE).exists());
    assert!(
        !dir.path().join(EVAL_FILE).exists(),
        "stale picture removed"
    );
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(m["name"], "t");
}
