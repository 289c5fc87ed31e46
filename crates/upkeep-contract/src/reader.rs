//! Reading a stream of documents: concatenated or one per line, pretty or
//! compact. Every refusal names the input, the document's 1-based index
//! and, when it is about a field, the field's path.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Document;
use crate::kind::{API_VERSION, KINDS};

/// Why a stream of documents was refused. Displays as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ReadError {
    /// Where the bytes came from: `stdin` or a file path.
    pub input: String,
    /// 1-based index of the offending document, when one is to blame.
    pub document: Option<usize>,
    /// Path of the offending field, e.g. `candidates[0].version`.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.input)?;
        if let Some(d) = self.document {
            write!(f, ": document {d}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        // One line, whatever the message carried.
        let msg = self.message.replace(['\n', '\r'], " ");
        write!(f, ": {msg}")
    }
}

impl ReadError {
    fn new(input: &str, document: Option<usize>, field: Option<String>, message: String) -> Self {
        ReadError {
            input: input.to_string(),
            document,
            field,
            message,
        }
    }
}

/// Line (1-based) of a byte offset, for messages about raw bytes.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Splits the input into JSON values, checking encoding and syntax.
fn split_values(bytes: &[u8], input: &str) -> Result<Vec<Value>, ReadError> {
    if let Err(e) = std::str::from_utf8(bytes) {
        let at = e.valid_up_to();
        return Err(ReadError::new(
            input,
            None,
            None,
            format!(
                "input is not valid UTF-8 (byte {at}, line {})",
                line_of(bytes, at)
            ),
        ));
    }
    let mut values = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<Value>();
    loop {
        let index = values.len() + 1;
        match stream.next() {
            None => break,
            Some(Ok(v)) => values.push(v),
            Some(Err(e)) => {
                let msg = if e.is_eof() {
                    format!(
                        "truncated: input ends inside the document (line {}, column {})",
                        e.line(),
                        e.column()
                    )
                } else if index == 1 && looks_like_yaml(bytes) {
                    format!(
                        "not valid JSON: {e} (upkeep documents are JSON; save them with -o json)"
                    )
                } else {
                    format!("not valid JSON: {e}")
                };
                return Err(ReadError::new(input, Some(index), None, msg));
            }
        }
    }
    if values.is_empty() {
        return Err(ReadError::new(
            input,
            None,
            None,
            format!("no documents in input (expected {API_VERSION} JSON documents)"),
        ));
    }
    Ok(values)
}

/// YAML output of our tools starts with `---` or `apiVersion:`.
fn looks_like_yaml(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    let head = &bytes[start..];
    head.starts_with(b"---") || head.starts_with(b"apiVersion:")
}

/// Checks `apiVersion` and returns the `kind` of one document.
fn header(value: &Value, input: &str, index: usize) -> Result<String, ReadError> {
    let err = |field: &str, msg: String| {
        Err(ReadError::new(
            input,
            Some(index),
            Some(field.to_string()),
            msg,
        ))
    };
    let Some(obj) = value.as_object() else {
        return Err(ReadError::new(
            input,
            Some(index),
            None,
            format!("expected a JSON object, found {}", type_name(value)),
        ));
    };
    match obj.get("apiVersion") {
        None => return err("apiVersion", "missing".to_string()),
        Some(Value::String(s)) if s == API_VERSION => {}
        Some(Value::String(s)) => {
            return err(
                "apiVersion",
                format!("unknown apiVersion {s:?}; this build reads {API_VERSION}"),
            );
        }
        Some(other) => {
            return err(
                "apiVersion",
                format!("expected a string, found {}", type_name(other)),
            );
        }
    }
    match obj.get("kind") {
        None => err("kind", "missing".to_string()),
        Some(Value::String(s)) if KINDS.contains(&s.as_str()) => Ok(s.clone()),
        Some(Value::String(s)) => err(
            "kind",
            format!("unknown kind {s:?}; known kinds: {}", KINDS.join(", ")),
        ),
        Some(other) => err(
            "kind",
            format!("expected a string, found {}", type_name(other)),
        ),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn typed<T: DeserializeOwned>(
    value: Value,
    input: &str,
    index: usize,
) -> Result<T, ReadError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != ".").then_some(path);
        ReadError::new(input, Some(index), field, e.into_inner().to_string())
    })
}

/// Reads every document in `bytes`; `input` names the source in errors.
pub fn read_documents(bytes: &[u8], input: &str) -> Result<Vec<Document>, ReadError> {
    split_values(bytes, input)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let index = i + 1;
            let kind = header(&v, input, index)?;
            Document::from_value(&kind, v, input, index)
        })
        .collect()
}

/// Reads documents that must all be of kind `T`.
pub fn read_kind<T: crate::DocumentKind>(bytes: &[u8], input: &str) -> Result<Vec<T>, ReadError> {
    split_values(bytes, input)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let index = i + 1;
            let kind = header(&v, input, index)?;
            if kind != T::KIND {
                return Err(ReadError::new(
                    input,
                    Some(index),
                    Some("kind".to_string()),
                    format!("expected {}, found {kind}", T::KIND),
                ));
            }
            typed(v, input, index)
        })
        .collect()
}
