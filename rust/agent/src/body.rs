//! Request bodies as JSON objects, read the way `JSON.parse` reads them, so a
//! caller gets the same answer from this agent as from any other WaitState
//! agent: a number too large for a float (`1e999`) is `Infinity` (a field
//! check then names the field) rather than a syntax error; nested, it is
//! echoed as `null`, as `JSON.stringify` writes `Infinity`.
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A parsed request body: its fields, plus the top-level fields whose value
/// was a number out of a float's range (those are `null` in `fields`).
#[derive(Debug, Default)]
pub struct Body {
    pub fields: Map<String, Value>,
    pub infinite: Vec<(String, f64)>,
}

/// What a top-level JSON value is, for the messages of a refused body.
pub enum Parsed {
    Object(Body),
    /// Valid JSON but not an object: the description of what it is.
    NotObject(String),
}

impl Body {
    /// The value of `name` as the field checks see it.
    pub fn get(&self, name: &str) -> Field<'_> {
        if let Some((_, x)) = self.infinite.iter().find(|(n, _)| n == name) {
            return Field::Infinite(*x);
        }
        match self.fields.get(name) {
            None | Some(Value::Null) => Field::Absent,
            Some(v) => Field::Value(v),
        }
    }
}

/// One field of a body. Absent and `null` are alike: what many languages send for "not set".
#[derive(Clone, Copy, Debug)]
pub enum Field<'a> {
    Absent,
    Value(&'a Value),
    Infinite(f64),
}

/// Parses `text` (never empty; the caller treats blank bodies) as JSON.
/// `Err` carries the parser's message.
pub fn parse(text: &str) -> Result<Parsed, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(fields)) => Ok(Parsed::Object(Body {
            fields,
            infinite: Vec::new(),
        })),
        Ok(other) => Ok(Parsed::NotObject(describe(Field::Value(&other)))),
        Err(strict) => {
            // Only a number out of range is read again; a syntax error stays one.
            let raw: Box<RawValue> = match serde_json::from_str(text) {
                Ok(raw) => raw,
                Err(_) => return Err(strict.to_string()),
            };
            let raw_text = raw.get();
            if raw_text.starts_with('{') {
                let pairs: Pairs = serde_json::from_str(raw_text).map_err(|_| strict.to_string())?;
                let mut body = Body::default();
                for (name, value) in pairs.0 {
                    match lenient(&value) {
                        Lenient::Value(v) => {
                            body.infinite.retain(|(n, _)| *n != name);
                            body.fields.insert(name, v);
                        }
                        Lenient::Infinite(x) => {
                            body.infinite.retain(|(n, _)| *n != name);
                            body.infinite.push((name.clone(), x));
                            body.fields.insert(name, Value::Null);
                        }
                    }
                }
                Ok(Parsed::Object(body))
            } else {
                match lenient(&raw) {
                    Lenient::Infinite(x) => Ok(Parsed::NotObject(describe(Field::Infinite(x)))),
                    Lenient::Value(v) => Ok(Parsed::NotObject(describe(Field::Value(&v)))),
                }
            }
        }
    }
}

enum Lenient {
    Value(Value),
    Infinite(f64),
}

/// A value whose numbers may be out of range: top-level such a number is
/// ±Infinity; inside arrays and objects it becomes `null`.
fn lenient(raw: &RawValue) -> Lenient {
    let text = raw.get();
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Lenient::Value(v);
    }
    let nested = |raw: &RawValue| match lenient(raw) {
        Lenient::Value(v) => v,
        Lenient::Infinite(_) => Value::Null,
    };
    match text.as_bytes().first() {
        Some(b'{') => match serde_json::from_str::<Pairs>(text) {
            Ok(pairs) => Lenient::Value(Value::Object(pairs.0.iter().map(|(k, v)| (k.clone(), nested(v))).collect())),
            Err(_) => Lenient::Value(Value::Null),
        },
        Some(b'[') => match serde_json::from_str::<Vec<Box<RawValue>>>(text) {
            Ok(items) => Lenient::Value(Value::Array(items.iter().map(|v| nested(v)).collect())),
            Err(_) => Lenient::Value(Value::Null),
        },
        _ => match text.parse::<f64>() {
            Ok(x) => Lenient::Infinite(x),
            Err(_) => Lenient::Value(Value::Null),
        },
    }
}

/// An object's members in order, each left unparsed.
struct Pairs(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut pairs = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    pairs.push(entry);
                }
                Ok(Pairs(pairs))
            }
        }
        deserializer.deserialize_map(PairsVisitor)
    }
}

/// How a refused value is shown in a message: strings quoted (cut at 40
/// characters), numbers as JavaScript prints them.
pub fn describe(field: Field<'_>) -> String {
    match field {
        Field::Absent => "nothing".to_string(),
        Field::Infinite(x) => (if x < 0.0 { "-Infinity" } else { "Infinity" }).to_string(),
        Field::Value(Value::Null) => "null".to_string(),
        Field::Value(Value::Array(_)) => "an array".to_string(),
        Field::Value(Value::Object(_)) => "an object".to_string(),
        Field::Value(Value::Bool(b)) => b.to_string(),
        Field::Value(Value::Number(n)) => match n.as_f64() {
            // JavaScript prints an integral float without a fraction (1.0 is "1").
            Some(x) if x.fract() == 0.0 && x.abs() < 1e21 => format!("{}", x),
            _ => n.to_string(),
        },
        Field::Value(Value::String(s)) => {
            if s.chars().count() > 40 {
                let cut: String = s.chars().take(40).chain(std::iter::once('…')).collect();
                Value::String(cut).to_string()
            } else {
                Value::String(s.clone()).to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str) -> Body {
        match parse(text) {
            Ok(Parsed::Object(body)) => body,
            _ => panic!("not an object: {}", text),
        }
    }

    #[test]
    fn numbers_out_of_range_are_infinite_at_the_top_and_null_inside() {
        let body = object(r#"{"weight":1e999,"tag":"a","headers":{"x":[-1e999,2]},"neg":-1e400}"#);
        assert!(matches!(body.get("weight"), Field::Infinite(x) if x == f64::INFINITY));
        assert!(matches!(body.get("neg"), Field::Infinite(x) if x == f64::NEG_INFINITY));
        assert_eq!(body.fields["headers"], serde_json::json!({"x": [null, 2]}));
        assert_eq!(body.fields.keys().collect::<Vec<_>>(), ["weight", "tag", "headers", "neg"]);
        assert_eq!(describe(body.get("weight")), "Infinity");
    }

    #[test]
    fn syntax_errors_stay_errors_and_non_objects_are_described() {
        assert!(parse("{tag:").is_err());
        assert!(parse("{\"a\":1e999").is_err());
        for (text, shown) in [
            ("[1]", "an array"),
            ("null", "null"),
            ("\"free\"", "\"free\""),
            ("1e999", "Infinity"),
            ("5", "5"),
        ] {
            match parse(text) {
                Ok(Parsed::NotObject(d)) => assert_eq!(d, shown),
                _ => panic!("{} should not be an object", text),
            }
        }
    }

    #[test]
    fn describe_cuts_long_strings_and_prints_numbers_as_javascript_does() {
        let long = Value::String("x".repeat(50));
        assert_eq!(describe(Field::Value(&long)), format!("\"{}…\"", "x".repeat(40)));
        assert_eq!(describe(Field::Value(&serde_json::json!(-1))), "-1");
        assert_eq!(describe(Field::Value(&serde_json::json!(2.5))), "2.5");
        assert_eq!(describe(Field::Value(&serde_json::json!(4.0))), "4");
        assert_eq!(describe(Field::Absent), "nothing");
    }
}
