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

/// `rid ‖ code`: key of a concept.
pub fn concept_key(rid: u64, code: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + code.len());
    k.extend_from_slice(&rid.to_be_bytes());
    k.extend_from_slice(code.as_bytes());
    k
}

/// `rid ‖ a ‖ 0 ‖ rel ‖ 0 ‖ b`: key of a relation (forward: a = from; reverse: a = to).
pub fn rel_key(rid: u64, a: &str, rel: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(10 + a.len() + rel.len() + b.len());
    k.extend_from_slice(&rid.to_be_bytes());
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(rel.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

/// `rid ‖ a ‖ 0`: prefix of all relations of `a`.
pub fn rel_prefix(rid: u64, a: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + a.len());
    k.extend_from_slice(&rid.to_be_bytes());
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k
}

/// Split the part of a relation key after `rid ‖ a ‖ 0` into (rel, b).
pub fn rel_tail(tail: &[u8]) -> Option<(&str, &str)> {
    let pos = tail.iter().position(|&b| b == 0)?;
    let rel = std::str::from_utf8(&tail[..pos]).ok()?;
    let b = std::str::from_utf8(&tail[pos + 1..]).ok()?;
    Some((rel, b))
}

/// `rid ‖ from_sys 0 from_code 0 to_sys 0 to_code`: primary key of a mapping.
pub fn map_key(rid: u64, from_sys: &str, from_code: &str, to_sys: &str, to_code: &str) -> Vec<u8> {
    let mut k = rid.to_be_bytes().to_vec();
    join4(&mut k, from_sys, from_code, to_sys, to_code);
    k
}

/// `a_sys 0 a_code 0 b_sys 0 b_code 0 rid`: key of the mapping lookup indexes.
pub fn map_idx_key(a_sys: &str, a_code: &str, b_sys: &str, b_code: &str, rid: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(a_sys.len() + a_code.len() + b_sys.len() + b_code.len() + 12);
    join4(&mut k, a_sys, a_code, b_sys, b_code);
    k.push(0);
    k.extend_from_slice(&rid.to_be_bytes());
    k
}

/// `sys 0 code 0`: prefix of the index entries of one concept.
pub fn map_idx_prefix(sys: &str, code: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(sys.len() + code.len() + 2);
    k.extend_from_slice(sys.as_bytes());
    k.push(0);
    k.extend_from_slice(code.as_bytes());
    k.push(0);
    k
}

/// Parse an index key's tail after the `sys 0 code 0` prefix into (other_sys, other_code, rid).
pub fn map_idx_tail(tail: &[u8]) -> Option<(&str, &str, u64)> {
    if tail.len() < 9 {
        return None;
    }
    let (body, rid) = tail.split_at(tail.len() - 8);
    let body = body.strip_suffix(&[0])?;
    let pos = body.iter().position(|&b| b == 0)?;
    let sys = std::str::from_utf8(&body[..pos]).ok()?;
    let code = std::str::from_utf8(&body[pos + 1..]).ok()?;
    Some((sys, code, read_u64(rid)))
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
    fn map_idx_roundtrip() {
        let k = map_idx_key("ICD10CM", "E11.9", "PHECODE", "250.2", 7);
        let p = map_idx_prefix("ICD10CM", "E11.9");
        assert!(k.starts_with(&p));
        assert_eq!(map_idx_tail(&k[p.len()..]), Some(("PHECODE", "250.2", 7)));
    }

    #[test]
    fn rel_roundtrip() {
        let k = rel_key(3, "E11.9", "is_a", "E11");
        let p = rel_prefix(3, "E11.9");
        assert_eq!(rel_tail(&k[p.len()..]), Some(("is_a", "E11")));
        // a code that extends another must not match its prefix
        assert!(!rel_key(3, "E11.90", "is_a", "E11").starts_with(&p));
    }
}
