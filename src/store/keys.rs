//! Key encodings of the store's trees (see the table in the module above).
//!
//! Codes and system names never contain a NUL byte (loaders reject control characters in codes),
//! so NUL separates key components and prefix scans stay exact.

/// Read a big-endian u64 (short or long inputs are padded/truncated).
pub fn read_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[..n].copy_from_slice(&b[..n]);
    u64::from_be_bytes(a)
}

/// Read a big-endian u32.
pub fn read_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    let n = b.len().min(4);
    a[..n].copy_from_slice(&b[..n]);
    u32::from_be_bytes(a)
}

/// `a ‖ 0 ‖ rel ‖ 0 ‖ b`: key of a relation in the `Rel` (a = from) or `RelRev` (a = to) table.
pub fn rel_body(a: &str, rel: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + a.len() + rel.len() + b.len());
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(rel.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

/// `a ‖ 0`: prefix of all relation keys of `a`.
pub fn rel_body_prefix(a: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + a.len());
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k
}

/// Split the part of a relation key after `a ‖ 0` into (rel, b).
pub fn rel_tail(tail: &[u8]) -> Option<(&str, &str)> {
    let pos = tail.iter().position(|&b| b == 0)?;
    let rel = std::str::from_utf8(&tail[..pos]).ok()?;
    let b = std::str::from_utf8(&tail[pos + 1..]).ok()?;
    Some((rel, b))
}

/// `a_sys 0 a_code 0 b_sys 0 b_code`: key of a mapping in the `Map` (a = from) or `MapRev`
/// (a = to) table.
pub fn map_body(a_sys: &str, a_code: &str, b_sys: &str, b_code: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a_sys.len() + a_code.len() + b_sys.len() + b_code.len() + 3);
    join4(&mut k, a_sys, a_code, b_sys, b_code);
    k
}

/// `sys 0 code 0`: prefix of the mapping keys of one concept.
pub fn map_body_prefix(sys: &str, code: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(sys.len() + code.len() + 2);
    k.extend_from_slice(sys.as_bytes());
    k.push(0);
    k.extend_from_slice(code.as_bytes());
    k.push(0);
    k
}

fn join4(k: &mut Vec<u8>, a: &str, b: &str, c: &str, d: &str) {
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k.push(0);
    k.extend_from_slice(c.as_bytes());
    k.push(0);
    k.extend_from_slice(d.as_bytes());
}

/// Split `a 0 b 0 c 0 d` into its four parts.
pub fn split4(body: &[u8]) -> Option<(&str, &str, &str, &str)> {
    let mut it = body.splitn(4, |&b| b == 0);
    let a = std::str::from_utf8(it.next()?).ok()?;
    let b = std::str::from_utf8(it.next()?).ok()?;
    let c = std::str::from_utf8(it.next()?).ok()?;
    let d = std::str::from_utf8(it.next()?).ok()?;
    Some((a, b, c, d))
}

/// Release id encoded in the high bits of a term id.
pub fn term_rid(term_id: u64) -> u64 {
    term_id >> 40
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_roundtrip() {
        let k = map_body("ICD10CM", "E11.9", "PHECODE", "250.2");
        let p = map_body_prefix("ICD10CM", "E11.9");
        assert!(k.starts_with(&p));
        assert_eq!(split4(&k), Some(("ICD10CM", "E11.9", "PHECODE", "250.2")));
        assert!(!map_body("ICD10CM", "E11.90", "X", "1").starts_with(&p));
    }

    #[test]
    fn rel_roundtrip() {
        let k = rel_body("E11.9", "is_a", "E11");
        let p = rel_body_prefix("E11.9");
        assert_eq!(rel_tail(&k[p.len()..]), Some(("is_a", "E11")));
        // a code that extends another must not match its prefix
        assert!(!rel_body("E11.90", "is_a", "E11").starts_with(&p));
    }
}
