//! Canonical JSON: keys sorted by their UTF-8 bytes, no insignificant whitespace.
//!
//! Signed documents (manifests, custody events, receipts) are serialised once with this writer
//! and their exact bytes are kept; nobody re-serialises a signed document to check it. The writer
//! does not depend on the map ordering of `serde_json` (another crate in a build could switch on
//! `preserve_order`), so the bytes are the same in every build.
//!
//! ```
//! let v = serde_json::json!({"b": 1, "a": [true, null, "x"]});
//! assert_eq!(fieldcap_evidence::canonical::to_vec(&v), br#"{"a":[true,null,"x"],"b":1}"#);
//! ```

use serde_json::Value;

/// Canonical bytes of a JSON value.
pub fn to_vec(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write(v, &mut out);
    out
}

/// Canonical bytes of any serialisable value.
pub fn to_vec_of<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, serde_json::Error> {
    Ok(to_vec(&serde_json::to_value(v)?))
}

/// True when `bytes` are exactly the canonical form of the JSON they hold.
pub fn is_canonical(bytes: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => to_vec(&v) == bytes,
        Err(_) => false,
    }
}

fn write(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_str(s, out),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(x, out);
            }
            out.push(b']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                if let Some(x) = m.get(k) {
                    write(x, out);
                }
            }
            out.push(b'}');
        }
    }
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    // serde_json's string escaping is the usual minimal one (", \\, control characters).
    match serde_json::to_string(s) {
        Ok(q) => out.extend_from_slice(q.as_bytes()),
        Err(_) => out.extend_from_slice(b"\"\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_keys_sorted_and_escaped() {
        let v = json!({"z": {"b": 1.5, "a": "q\"\n"}, "a": -3});
        assert_eq!(to_vec(&v), br#"{"a":-3,"z":{"a":"q\"\n","b":1.5}}"#.to_vec());
        assert!(is_canonical(&to_vec(&v)));
        assert!(!is_canonical(br#"{"z":1,"a":2}"#));
        assert!(!is_canonical(br#"{"a": 2}"#));
    }
}
