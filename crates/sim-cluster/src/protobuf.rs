//! Decoding of the Kubernetes protobuf envelope for the few kinds kubectl's typed `create`
//! subcommands send that way (`create namespace|configmap|secret|serviceaccount`). Answers
//! are always JSON, which kubectl accepts. Field numbers are those of k8s.io/api's
//! generated.proto; other kinds are refused with 415 so the client sees why.

use base64::Engine;
use serde_json::{Map, Value, json};

/// The `k8s\0` magic that starts every Kubernetes protobuf body.
pub const MAGIC: &[u8] = b"k8s\0";

#[derive(Debug, thiserror::Error)]
#[error("protobuf body: {0}")]
pub struct ProtoError(pub String);

fn err(m: &str) -> ProtoError {
    ProtoError(m.to_string())
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, ProtoError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or_else(|| err("truncated varint"))?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(err("varint too long"))
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ProtoError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (num, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => Field::Varint(varint(buf, &mut pos)?),
            2 => {
                let len =
                    usize::try_from(varint(buf, &mut pos)?).map_err(|_| err("length overflow"))?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or_else(|| err("truncated field"))?;
                let b = &buf[pos..end];
                pos = end;
                Field::Bytes(b)
            }
            1 => {
                pos += 8;
                continue;
            }
            5 => {
                pos += 4;
                continue;
            }
            _ => return Err(err("unsupported wire type")),
        };
        out.push((num, f));
    }
    if pos > buf.len() {
        return Err(err("truncated fixed field"));
    }
    Ok(out)
}

fn text(b: &[u8]) -> Result<String, ProtoError> {
    String::from_utf8(b.to_vec()).map_err(|_| err("string field is not UTF-8"))
}

/// A `map<string, string|bytes>` entry (key = 1, value = 2).
fn map_entry(b: &[u8], value_bytes: bool) -> Result<(String, Value), ProtoError> {
    let (mut k, mut v) = (String::new(), json!(""));
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => k = text(x)?,
            (2, Field::Bytes(x)) if value_bytes => {
                v = json!(base64::engine::general_purpose::STANDARD.encode(x))
            }
            (2, Field::Bytes(x)) => v = json!(text(x)?),
            _ => {}
        }
    }
    Ok((k, v))
}

fn insert_entry(obj: &mut Map<String, Value>, key: &str, entry: (String, Value)) {
    let m = obj.entry(key.to_string()).or_insert_with(|| json!({}));
    if let Value::Object(m) = m {
        m.insert(entry.0, entry.1);
    }
}

fn object_meta(b: &[u8]) -> Result<Value, ProtoError> {
    let mut m = Map::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => _ = m.insert("name".into(), json!(text(x)?)),
            (2, Field::Bytes(x)) => _ = m.insert("generateName".into(), json!(text(x)?)),
            (3, Field::Bytes(x)) => _ = m.insert("namespace".into(), json!(text(x)?)),
            (6, Field::Bytes(x)) => _ = m.insert("resourceVersion".into(), json!(text(x)?)),
            (11, Field::Bytes(x)) => insert_entry(&mut m, "labels", map_entry(x, false)?),
            (12, Field::Bytes(x)) => insert_entry(&mut m, "annotations", map_entry(x, false)?),
            (14, Field::Bytes(x)) => {
                let list = m.entry("finalizers").or_insert_with(|| json!([]));
                if let Value::Array(a) = list {
                    a.push(json!(text(x)?));
                }
            }
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

fn local_refs(b: &[u8]) -> Result<Value, ProtoError> {
    let mut name = String::new();
    for (n, f) in fields(b)? {
        if let (1, Field::Bytes(x)) = (n, f) {
            name = text(x)?;
        }
    }
    Ok(json!({"name": name}))
}

fn decode_kind(kind: &str, raw: &[u8]) -> Result<Value, ProtoError> {
    let mut obj = Map::new();
    for (n, f) in fields(raw)? {
        match (kind, n, f) {
            (_, 1, Field::Bytes(x)) => _ = obj.insert("metadata".into(), object_meta(x)?),
            ("ConfigMap", 2, Field::Bytes(x)) => {
                insert_entry(&mut obj, "data", map_entry(x, false)?)
            }
            ("ConfigMap", 3, Field::Bytes(x)) => {
                insert_entry(&mut obj, "binaryData", map_entry(x, true)?)
            }
            ("ConfigMap", 4, Field::Varint(v)) | ("Secret", 5, Field::Varint(v)) => {
                _ = obj.insert("immutable".into(), json!(v != 0))
            }
            ("Secret", 2, Field::Bytes(x)) => insert_entry(&mut obj, "data", map_entry(x, true)?),
            ("Secret", 3, Field::Bytes(x)) => _ = obj.insert("type".into(), json!(text(x)?)),
            ("Secret", 4, Field::Bytes(x)) => {
                insert_entry(&mut obj, "stringData", map_entry(x, false)?)
            }
            ("Namespace", 2, Field::Bytes(x)) => {
                let mut fin = Vec::new();
                for (fnum, ff) in fields(x)? {
                    if let (1, Field::Bytes(y)) = (fnum, ff) {
                        fin.push(json!(text(y)?));
                    }
                }
                obj.insert("spec".into(), json!({"finalizers": fin}));
            }
            ("ServiceAccount", 2, Field::Bytes(x)) => {
                let list = obj.entry("secrets").or_insert_with(|| json!([]));
                if let Value::Array(a) = list {
                    a.push(local_refs(x)?);
                }
            }
            ("ServiceAccount", 3, Field::Bytes(x)) => {
                let list = obj.entry("imagePullSecrets").or_insert_with(|| json!([]));
                if let Value::Array(a) = list {
                    a.push(local_refs(x)?);
                }
            }
            ("ServiceAccount", 4, Field::Varint(v)) => {
                _ = obj.insert("automountServiceAccountToken".into(), json!(v != 0))
            }
            _ => {}
        }
    }
    Ok(Value::Object(obj))
}

/// Decodes a `k8s\0`-prefixed runtime.Unknown envelope into a JSON object.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| err("missing k8s magic"))?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(envelope)? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (tn, tf) in fields(tm)? {
                    match (tn, tf) {
                        (1, Field::Bytes(x)) => api_version = text(x)?,
                        (2, Field::Bytes(x)) => kind = text(x)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    if api_version != "v1"
        || !matches!(
            kind.as_str(),
            "ConfigMap" | "Secret" | "Namespace" | "ServiceAccount"
        )
    {
        return Err(ProtoError(format!(
            "sim-cluster decodes protobuf only for v1 ConfigMap, Secret, Namespace and ServiceAccount (got {api_version} {kind}); send JSON, e.g. 'kubectl create -f' or 'kubectl apply -f'"
        )));
    }
    let mut obj = decode_kind(&kind, raw)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((num << 3) | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_configmap_envelope() {
        let meta = [
            field(1, b"settings"),
            field(3, b"apps"),
            field(11, &[field(1, b"app"), field(2, b"web")].concat()),
        ]
        .concat();
        let cm = [
            field(1, &meta),
            field(2, &[field(1, b"k"), field(2, b"v")].concat()),
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &cm)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"metadata": {"name": "settings", "namespace": "apps", "labels": {"app": "web"}},
                   "data": {"k": "v"}, "apiVersion": "v1", "kind": "ConfigMap"})
        );
    }

    #[test]
    fn refuses_other_kinds_and_garbage() {
        let type_meta = [field(1, b"apps/v1"), field(2, b"Deployment")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta)].concat();
        assert!(
            decode(&body)
                .unwrap_err()
                .to_string()
                .contains("Deployment")
        );
        assert!(decode(b"k8s\0\x0a\xff").is_err());
    }
}
