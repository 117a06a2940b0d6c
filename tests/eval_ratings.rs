//! `ontovec eval ratings` end to end on the tiny random BERT (no network, no real model): the
//! table has a row per set and a pooled row with the right pair counts, two copies of the same
//! weights score the same ρ (Δ 0 with a zero-width interval), the output is reproducible, and bad
//! input fails with a message instead of a table. Also: the committed dev sets parse with the
//! pair counts their sources have.

use ontovec::encoder::testing::{write_tiny_bert, TinyBert};
use ontovec::eval::ratings::read_ratings;
use std::path::Path;
use std::process::{Command, Output};

fn ontovec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ontovec"))
        .args(["eval", "ratings"])
        .args(args)
        .env("ONTOVEC_LOG", "warn")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Two rating files in the tiny model's vocabulary, on different scales.
fn fixtures(dir: &Path) -> (String, String) {
    let a = dir.join("relatedness_small.tsv");
    std::fs::write(
        &a,
        "# toy set, scale 1-4\nterm_a\tterm_b\trating\n\
         heart failure\tmyocardial infarction\t3.3\n\
         kidney disease\tchronic kidney disease stage 3\t4\n\
         asthma\tfemur fracture\t1\n\
         fever\tcough\t2\n\
         type 2 diabetes mellitus\tdiabetes mellitus with complications\t3.7\n\
         knee pain\tessential hypertension\t1.3\n",
    )
    .unwrap();
    let b = dir.join("relatedness_scaled.tsv");
    std::fs::write(
        &b,
        "# toy set, scale 0-1\n\
         pneumonia\tsepsis\t0.5\n\
         acute myocardial infarction\theart failure\t0.75\n\
         left femur fracture\tright femur fracture\t0.9\n\
         mild asthma\tsevere persistent asthma\t0.8\n\
         cough\tknee pain\t0.1\n",
    )
    .unwrap();
    (a.display().to_string(), b.display().to_string())
}

#[test]
fn side_by_side_table_pooled_and_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    write_tiny_bert(&models.join("tiny"), &TinyBert::default()).unwrap();
    // the same weights (same seed) in a folder outside the models dir
    let twin = dir.path().join("elsewhere/twin");
    write_tiny_bert(&twin, &TinyBert::default()).unwrap();
    let (a, b) = fixtures(dir.path());
    let args = [
        "--models-dir",
        models.to_str().unwrap(),
        "--model",
        "tiny",
        "--model-dir",
        twin.to_str().unwrap(),
        "--pairs",
        &a,
        "--pairs",
        &b,
        "--pool",
        "small,scaled",
        "--resamples",
        "200",
    ];
    let out = ontovec(&args);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("200 resamples, seed 14"), "{stdout}");
    assert!(
        stdout.contains("| set | n | tiny ρ [95% CI] | twin ρ [95% CI] | Δ twin − tiny [95% CI] |"),
        "{stdout}"
    );
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(rows.len(), 4, "{stdout}"); // header + 2 sets + pooled
    assert!(rows[1].starts_with("| small | 6 | "), "{stdout}");
    assert!(rows[2].starts_with("| scaled | 5 | "), "{stdout}");
    assert!(
        rows[3].starts_with("| pooled (small + scaled) | 11 | "),
        "{stdout}"
    );
    for row in &rows[1..] {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells.len(), 5, "{row}");
        assert_eq!(cells[2], cells[3], "same weights, same ρ and CI: {row}");
        assert_eq!(cells[4], "0.000 [0.000, 0.000]", "{row}");
        // ρ inside its interval
        let nums: Vec<f64> = cells[2]
            .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(nums.len(), 3, "{row}");
        assert!(nums[1] <= nums[0] && nums[0] <= nums[2], "{row}");
    }
    let again = ontovec(&args);
    assert_eq!(
        text(&again.stdout),
        stdout,
        "seeded bootstrap: same table twice"
    );
}

#[test]
fn bad_input_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    write_tiny_bert(&models.join("tiny"), &TinyBert::default()).unwrap();
    let (a, _) = fixtures(dir.path());
    let bad = dir.path().join("relatedness_bad.tsv");
    std::fs::write(&bad, "heart\tfailure\t2\nfever\tcough\thigh\n").unwrap();
    let m = models.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--models-dir",
                m,
                "--model",
                "tiny",
                "--pairs",
                bad.to_str().unwrap(),
            ],
            "relatedness_bad.tsv:2",
        ),
        (
            &["--models-dir", m, "--model", "nope", "--pairs", &a],
            "not a model folder",
        ),
        (
            &[
                "--models-dir",
                m,
                "--model",
                "tiny",
                "--pairs",
                &a,
                "--pool",
                "small,other",
            ],
            "pooled set `other`",
        ),
        (
            &[
                "--models-dir",
                m,
                "--model",
                "tiny",
                "--pairs",
                "/nonexistent/x.tsv",
            ],
            "reading /nonexistent/x.tsv",
        ),
    ];
    for (args, msg) in cases {
        let out = ontovec(args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(msg), "{args:?}: {stderr}");
        assert!(
            !text(&out.stdout).contains("| set |"),
            "{args:?} printed a table"
        );
    }
}

#[test]
fn committed_dev_sets_parse_with_their_source_counts() {
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join("ontologies/dev");
    for (name, n) in [
        ("mayosrs", 101),
        ("minimayosrs_physicians", 29),
        ("minimayosrs_coders", 29),
        ("pedersen_physicians", 30),
        ("pedersen_coders", 30),
        ("hliaoutakis", 36),
    ] {
        let s = read_ratings(&dev.join(format!("relatedness_{name}.tsv"))).unwrap();
        assert_eq!(s.name, name);
        assert_eq!(s.pairs.len(), n, "{name}");
    }
}
