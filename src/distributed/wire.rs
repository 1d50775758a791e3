//! What the records of repartition topics hold.
//!
//! A data record's value is a JSON array of the tuple's values, in the order of the
//! fields the reader knows from the topology (the same file on every instance): strings
//! and integers as themselves, `null`, booleans; floats as `{"f": x}`, bytes as
//! `{"b": [..]}`, lists as `{"l": [..]}` (so a float stays a float and bytes stay bytes).
//! An end marker is a JSON object `{"end": {"topic": T, "partition": P, "of": N}}`: the
//! writer's side will send nothing more that comes from partition `P` (of `N`) of topic
//! `T` upstream.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::data::tuple::{Value, Values};

/// Why a record is not one of ours.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WireError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("expected {expected} values, got {got}")]
    Arity { expected: usize, got: usize },
    #[error("value {index}: {why}")]
    Value { index: usize, why: String },
    #[error("an empty record")]
    Empty,
}

/// "Nothing more from this upstream partition".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndMarker {
    pub topic: String,
    pub partition: i32,
    pub of: i32,
}

#[derive(Serialize, Deserialize)]
struct MarkerRecord {
    end: EndMarker,
}

/// A record of a repartition topic.
#[derive(Debug, PartialEq)]
pub enum WireRecord {
    Tuple(Values),
    End(EndMarker),
}

fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(x) => serde_json::json!({ "f": x }),
        Value::Str(s) => Json::String(s.to_string()),
        Value::Bytes(b) => serde_json::json!({ "b": b.as_ref() }),
        Value::List(l) => serde_json::json!({ "l": l.iter().map(to_json).collect::<Vec<_>>() }),
    }
}

fn from_json(j: Json) -> Result<Value, String> {
    Ok(match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => Value::Int(n.as_i64().ok_or_else(|| format!("{n} is not an i64"))?),
        Json::String(s) => Value::from(s),
        Json::Array(_) => return Err("a bare array".into()),
        Json::Object(mut m) => {
            if let Some(f) = m.remove("f") {
                // JSON has no NaN or infinity: serde_json writes them as null.
                Value::Float(f.as_f64().unwrap_or(f64::NAN))
            } else if let Some(Json::Array(b)) = m.remove("b") {
                let bytes: Result<Vec<u8>, String> = b
                    .into_iter()
                    .map(|x| {
                        x.as_u64()
                            .and_then(|n| u8::try_from(n).ok())
                            .ok_or_else(|| format!("{x} is not a byte"))
                    })
                    .collect();
                Value::Bytes(Arc::from(bytes?))
            } else if let Some(Json::Array(l)) = m.remove("l") {
                let l: Result<Vec<Value>, String> = l.into_iter().map(from_json).collect();
                Value::List(l?.into())
            } else {
                return Err("an object that is not {\"f\"}, {\"b\"} or {\"l\"}".into());
            }
        }
    })
}

/// A tuple's values as a record value.
pub fn encode_values<'a>(values: impl Iterator<Item = &'a Value>) -> Vec<u8> {
    let arr: Vec<Json> = values.map(to_json).collect();
    serde_json::to_vec(&arr).unwrap_or_else(|_| b"[]".to_vec())
}

/// An end marker as a record value.
pub fn encode_marker(m: &EndMarker) -> Vec<u8> {
    serde_json::to_vec(&MarkerRecord { end: m.clone() }).unwrap_or_default()
}

/// A record value read back; `arity`: the number of values a tuple record must have.
pub fn decode(payload: &[u8], arity: usize) -> Result<WireRecord, WireError> {
    let first = payload
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .ok_or(WireError::Empty)?;
    if *first == b'{' {
        let m: MarkerRecord =
            serde_json::from_slice(payload).map_err(|e| WireError::Json(e.to_string()))?;
        return Ok(WireRecord::End(m.end));
    }
    let arr: Vec<Json> =
        serde_json::from_slice(payload).map_err(|e| WireError::Json(e.to_string()))?;
    if arr.len() != arity {
        return Err(WireError::Arity {
            expected: arity,
            got: arr.len(),
        });
    }
    let mut out = Values::with_capacity(arity);
    for (index, j) in arr.into_iter().enumerate() {
        out.push(from_json(j).map_err(|why| WireError::Value { index, why })?);
    }
    Ok(WireRecord::Tuple(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_value_round_trips() {
        let vals: Vec<Value> = vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(-42),
            Value::Float(1.0),
            Value::from("#rust"),
            Value::Bytes(Arc::from(&b"\x00\xff"[..])),
            Value::List(vec![Value::Int(1), Value::from("a"), Value::Float(2.5)].into()),
        ];
        let bytes = encode_values(vals.iter());
        match decode(&bytes, vals.len()) {
            Ok(WireRecord::Tuple(v)) => assert_eq!(v.to_vec(), vals),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn markers_round_trip_and_bad_records_are_errors() {
        let m = EndMarker {
            topic: "tweets".into(),
            partition: 3,
            of: 6,
        };
        assert_eq!(decode(&encode_marker(&m), 1), Ok(WireRecord::End(m)));
        assert!(matches!(decode(b"[1,2]", 1), Err(WireError::Arity { .. })));
        assert!(matches!(decode(b"", 1), Err(WireError::Empty)));
        assert!(matches!(
            decode(b"[{\"x\":1}]", 1),
            Err(WireError::Value { .. })
        ));
        assert!(matches!(decode(b"not json", 1), Err(WireError::Json(_))));
        assert!(matches!(decode(b"{\"end\":3}", 1), Err(WireError::Json(_))));
    }
}
