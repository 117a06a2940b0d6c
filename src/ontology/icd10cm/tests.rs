//! Tests of `mod`.

use super::*;

#[test]
fn dots_and_chapter_codes() {
    assert_eq!(with_dot("E119"), "E11.9");
    assert_eq!(with_dot("V812XXA"), "V81.2XXA");
    assert_eq!(with_dot("E11.9"), "E11.9");
    assert_eq!(with_dot("A00"), "A00");
    assert_eq!(
        chapter_code("Endocrine, nutritional and metabolic diseases (E00-E89)"),
        Some("E00-E89")
    );
    assert_eq!(chapter_code("No range"), None);
}

#[test]
fn includes_notes_that_are_wordings() {
    assert_eq!(
        includes_term("high blood pressure").as_deref(),
        Some("high blood pressure")
    );
    assert_eq!(
        includes_term("hypertension (arterial) (benign) (essential)").as_deref(),
        Some("hypertension (arterial) (benign) (essential)")
    );
    assert_eq!(
        includes_term("Leser-Trélat disease;").as_deref(),
        Some("Leser-Trélat disease")
    );
    for instruction in [
        "any condition in I50.- or I51.4-I51.7, I51.89, I51.9 due to hypertension",
        "conditions in Y93",
        "the listed conditions in the fetus as a reason for hospitalization",
        "Category Y93 is provided for use to indicate the activity of the person seeking \
         healthcare for an injury",
        "",
    ] {
        assert_eq!(includes_term(instruction), None, "{instruction}");
    }
}
