//! protocol/vectors/policy.json against `waitstate_core::policy::parse_policy`:
//! valid inputs give the normalized policy, invalid ones the first field at fault.
#![cfg(feature = "json")]
use serde_json::Value;
use std::path::PathBuf;
use waitstate_core::policy::{parse_policy, WirePolicy};

fn cases() -> Vec<Value> {
    let dir = std::env::var_os("WAITSTATE_VECTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../protocol/vectors"));
    let path = dir.join("policy.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {}", path.display(), e));
    let json: Value = serde_json::from_str(&text).expect("policy.json is JSON");
    json["cases"].as_array().expect("cases array").clone()
}

/// The normalized policy as the vectors write it (the TypeScript parser's output, as JSON).
fn to_json(p: &WirePolicy) -> Value {
    let mut tags = serde_json::Map::new();
    for (tag, limit) in &p.tag_max_weights {
        tags.insert(tag.clone(), limit.map(Value::from).unwrap_or(Value::Null));
    }
    let mut o = serde_json::Map::new();
    o.insert("version".into(), p.version.into());
    o.insert(
        "globalMaxWeight".into(),
        p.global_max_weight.map(Value::from).unwrap_or(Value::Null),
    );
    o.insert("tagMaxWeights".into(), Value::Object(tags));
    o.insert("killSignal".into(), p.kill_signal.into());
    o.insert("status".into(), p.status.as_str().into());
    o.insert("pulseInterval".into(), p.pulse_interval.into());
    o.insert("leaseDurationSeconds".into(), p.lease_duration_seconds.into());
    if let Some(at) = p.issued_at {
        o.insert("issuedAt".into(), at.into());
    }
    if let Some(s) = p.retry_after_seconds {
        o.insert("retryAfterSeconds".into(), s.into());
    }
    Value::Object(o)
}

/// Numbers compare by value (`5` and `5.0` are one JSON number), objects by key set.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).map_or(false, |w| same(v, w))),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w)),
        _ => a == b,
    }
}

fn run(c: &Value) -> Option<String> {
    let name = c["name"].as_str().unwrap_or("?");
    let valid = c["valid"].as_bool().expect("valid is a boolean");
    match (parse_policy(&c["input"]), valid) {
        (Ok(p), true) => {
            let got = to_json(&p);
            if same(&got, &c["policy"]) {
                None
            } else {
                Some(format!("{}: policy {} != {}", name, got, c["policy"]))
            }
        }
        (Err(e), false) => {
            if e.path == c["path"].as_str().expect("an invalid case names its path") {
                None
            } else {
                Some(format!("{}: refused at {} ({}), expected {}", name, e.path, e.message, c["path"]))
            }
        }
        (Ok(_), false) => Some(format!("{}: accepted, expected refused at {}", name, c["path"])),
        (Err(e), true) => Some(format!("{}: refused: {}", name, e)),
    }
}

#[test]
fn policy_vectors() {
    let cases = cases();
    assert!(cases.iter().any(|c| c["valid"] == true) && cases.iter().any(|c| c["valid"] == false));
    let failures: Vec<String> = cases.iter().filter_map(run).collect();
    assert!(
        failures.is_empty(),
        "{} policy mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_broken_policy_vector_fails() {
    for c in cases() {
        let mut broken = c.clone();
        broken["valid"] = Value::Bool(!c["valid"].as_bool().unwrap());
        broken["path"] = Value::from("(root)");
        assert!(run(&broken).is_some(), "a flipped copy of {} still passes", c["name"]);
    }
}
