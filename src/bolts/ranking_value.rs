//! Rankings as a tuple value: a list of `[key, count]` pairs, best first.

use compact_str::CompactString;

use crate::data::tuple::Value;

pub type Ranking = Vec<(CompactString, u64)>;

pub fn to_value(r: &[(CompactString, u64)]) -> Value {
    Value::from(
        r.iter()
            .map(|(k, c)| Value::from(vec![Value::Str(k.clone()), Value::Int(*c as i64)]))
            .collect::<Vec<_>>(),
    )
}

pub fn from_value(v: &Value) -> Option<Ranking> {
    v.as_list()?
        .iter()
        .map(|pair| match pair.as_list()? {
            [Value::Str(k), Value::Int(c)] => Some((k.clone(), (*c).max(0) as u64)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r: Ranking = vec![("a".into(), 3), ("b".into(), 1)];
        assert_eq!(from_value(&to_value(&r)), Some(r));
        assert_eq!(from_value(&Value::from(1)), None);
    }
}
