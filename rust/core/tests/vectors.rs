//! Runs protocol/vectors/*.json (the files the TypeScript suites read) against
//! the Rust core, natively: `decide`, the `Engine` (with its fast path), the
//! histogram and pulse signing.
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use waitstate_core::engine::Engine;
use waitstate_core::gate::{decide, GateState, Limit, Policy, Reason, Status, Strategy};
use waitstate_core::histogram::{upper_bounds, Histogram, BOUNDED};
use waitstate_core::sign::{sign_pulse, to_hex};

fn vectors(name: &str) -> Vec<Value> {
    let dir = std::env::var_os("WAITSTATE_VECTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../protocol/vectors"));
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {}", path.display(), e));
    let json: Value = serde_json::from_str(&text).expect("vector file is JSON");
    json["cases"].as_array().expect("cases array").clone()
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("f64"),
        Value::String(s) => match s.as_str() {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            "-0" => -0.0,
            other => other.parse().expect("numeric string"),
        },
        other => panic!("not a number: {}", other),
    }
}

/// A limit on the wire: a number, or null for unlimited.
fn limit(v: &Value) -> Option<f64> {
    if v.is_null() {
        None
    } else {
        Some(number(v))
    }
}

/// A case's `tagMaxWeights`, in file order; `None` for a `null` entry.
type TagLimits = Vec<(String, Option<f64>)>;

struct Case {
    name: String,
    policy: Option<(Policy, TagLimits)>,
    state: GateState,
}

fn load_case(c: &Value) -> Case {
    let config = &c["config"];
    let strategy = config["safeModeStrategy"]
        .as_str()
        .map(|s| Strategy::from_name(s).expect("strategy"))
        .unwrap_or(Strategy::Open);
    let rps = config.get("safeModeMaxRps").map(number).unwrap_or(50.0);
    let mut state = GateState::new(strategy, rps);
    if let Some(at) = c["lastSyncAt"].as_f64() {
        state.mark_synced(at);
    }
    let policy = if c["policy"].is_null() {
        None
    } else {
        let p = &c["policy"];
        let mut tags = Vec::new();
        if let Some(map) = p["tagMaxWeights"].as_object() {
            for (tag, value) in map {
                tags.push((tag.clone(), limit(value)));
            }
        }
        Some((
            Policy {
                global_max_weight: p.get("globalMaxWeight").and_then(limit),
                kill_signal: p["killSignal"].as_bool().unwrap_or(false),
                status: p["status"]
                    .as_str()
                    .map(|s| Status::from_name(s).expect("status"))
                    .unwrap_or(Status::Ok),
                lease_duration_seconds: p.get("leaseDurationSeconds").map(number).unwrap_or(60.0),
            },
            tags,
        ))
    };
    Case {
        name: c["name"].as_str().unwrap_or("?").to_string(),
        policy,
        state,
    }
}

/// A call's (tag, weight, now): an absent or empty tag is `__default__`, an absent weight 1.
fn call_input(call: &Value) -> (&str, f64, f64) {
    let tag = match call["tag"].as_str() {
        None | Some("") => "__default__",
        Some(t) => t,
    };
    (tag, call.get("weight").map(number).unwrap_or(1.0), number(&call["now"]))
}

/// Runs a case; returns a description of every call whose result differs.
fn run_case(c: &Value) -> Vec<String> {
    let mut case = load_case(c);
    let mut mismatches = Vec::new();
    for (i, call) in c["calls"].as_array().expect("calls").iter().enumerate() {
        let (tag, weight, now) = call_input(call);
        let lim = match &case.policy {
            Some((_, tags)) => tags
                .iter()
                .find(|(t, _)| t == tag)
                .map(|(_, v)| Limit::Tag(*v))
                .unwrap_or(Limit::Global),
            None => Limit::Global,
        };
        let d = decide(case.policy.as_ref().map(|(p, _)| p), &mut case.state, now, lim, weight);
        let (allowed, reason) = (
            call["expect"]["allowed"].as_bool().unwrap(),
            call["expect"]["reason"].as_str().unwrap(),
        );
        if d.allowed != allowed || d.reason.as_str() != reason {
            mismatches.push(format!(
                "{} / call {}: expected ({}, {}), got ({}, {})",
                case.name,
                i,
                allowed,
                reason,
                d.allowed,
                d.reason.as_str()
            ));
        }
    }
    mismatches
}

#[test]
fn gate_vectors() {
    let cases = vectors("gate.json");
    assert!(cases.len() >= 60, "expected at least 60 gate cases, found {}", cases.len());
    let failures: Vec<String> = cases.iter().flat_map(run_case).collect();
    assert!(failures.is_empty(), "{} gate mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn a_broken_gate_vector_fails() {
    let mut case = vectors("gate.json")[0].clone();
    let flipped = !case["calls"][0]["expect"]["allowed"].as_bool().unwrap();
    case["calls"][0]["expect"]["allowed"] = Value::Bool(flipped);
    assert_eq!(run_case(&case).len(), 1);
}

const REASONS: [Reason; 8] = [
    Reason::Allowed,
    Reason::LeaseExpired,
    Reason::CapExceeded,
    Reason::Suspended,
    Reason::KillSignal,
    Reason::TagBlocked,
    Reason::GlobalBlock,
    Reason::OverWeight,
];

/// Runs a case through an [`Engine`], as the wasm module's C ABI drives it for
/// @waitstate/edge: tags interned to ids once (the map lives across cases, as a
/// JS Map lives across policy reloads), the policy staged entry by entry, then
/// `gate` per call. This exercises the engine's fast path, which `decide` alone does not.
fn run_case_through_engine(c: &Value, engine: &mut Engine, ids: &mut HashMap<String, u32>) -> Vec<String> {
    let case = load_case(c);
    let mut id_of = |tag: &str| -> u32 {
        let next = ids.len() as u32;
        *ids.entry(tag.to_string()).or_insert(next)
    };
    engine.reset();
    engine
        .configure(case.state.strategy, case.state.safe_mode_max_rps)
        .expect(&case.name);
    if let (Some((p, tags)), Some(at)) = (&case.policy, case.state.last_sync_at) {
        engine.policy_begin(*p).expect(&case.name);
        for (tag, limit) in tags {
            let tag = if tag.is_empty() { "__default__" } else { tag.as_str() };
            engine.policy_tag(id_of(tag), *limit).expect(&case.name);
        }
        engine.policy_commit(at).expect(&case.name);
    }
    let mut mismatches = Vec::new();
    for (i, call) in c["calls"].as_array().expect("calls").iter().enumerate() {
        let (tag, weight, now) = call_input(call);
        let code = engine.gate(id_of(tag), weight, now);
        let (allowed, reason) = (code & 16 != 0, REASONS[(code & 15) as usize]);
        let (want_allowed, want_reason) = (
            call["expect"]["allowed"].as_bool().unwrap(),
            call["expect"]["reason"].as_str().unwrap(),
        );
        if code > 31 || allowed != want_allowed || reason.as_str() != want_reason {
            mismatches.push(format!(
                "{} / call {} (engine): expected ({}, {}), got code {} ({}, {})",
                case.name,
                i,
                want_allowed,
                want_reason,
                code,
                allowed,
                reason.as_str()
            ));
        }
    }
    mismatches
}

#[test]
fn gate_vectors_through_the_engine() {
    let cases = vectors("gate.json");
    let mut engine = Box::new(Engine::new());
    let mut ids = HashMap::new();
    let failures: Vec<String> = cases
        .iter()
        .flat_map(|c| run_case_through_engine(c, &mut engine, &mut ids))
        .collect();
    assert!(
        failures.is_empty(),
        "{} gate mismatches through the engine:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // And in reverse order, so no case passes only thanks to the state the previous one left.
    let failures: Vec<String> = cases
        .iter()
        .rev()
        .flat_map(|c| run_case_through_engine(c, &mut engine, &mut ids))
        .collect();
    assert!(
        failures.is_empty(),
        "{} gate mismatches through the engine (reversed):\n{}",
        failures.len(),
        failures.join("\n")
    );
    let mut broken = cases[0].clone();
    let flipped = !broken["calls"][0]["expect"]["allowed"].as_bool().unwrap();
    broken["calls"][0]["expect"]["allowed"] = Value::Bool(flipped);
    assert_eq!(run_case_through_engine(&broken, &mut engine, &mut ids).len(), 1);
}

fn close_to(actual: Option<f64>, expected: &Value) -> bool {
    match (actual, expected.as_f64()) {
        (None, None) => expected.is_null(),
        (Some(a), Some(e)) => a == e || (a - e).abs() <= 1e-9 * e.abs().max(f64::MIN_POSITIVE),
        _ => false,
    }
}

fn histogram_of(values: &[Value]) -> Histogram {
    let mut h = Histogram::new();
    for v in values {
        h.record(number(v));
    }
    h
}

fn check_encoding(name: &str, h: &Histogram, expected: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let mut pairs = [0u64; 2 * 166];
    let k = h.encode_pairs(&mut pairs);
    let got: Vec<u64> = pairs[..k].to_vec();
    let want: Vec<u64> = expected["b"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    if got != want {
        errors.push(format!("{}: buckets {:?} != {:?}", name, got, want));
    }
    if h.count != expected["n"].as_u64().unwrap() {
        errors.push(format!("{}: n {} != {}", name, h.count, expected["n"]));
    }
    let (lo, hi) = h.encoded_min_max();
    if lo != number(&expected["lo"]) || hi != number(&expected["hi"]) {
        errors.push(format!("{}: lo/hi {}/{} != {}/{}", name, lo, hi, expected["lo"], expected["hi"]));
    }
    let empty_sum = h.count == 0 && number(&expected["s"]) == 0.0;
    if !(close_to(Some(h.sum), &expected["s"]) || empty_sum) {
        errors.push(format!("{}: s {} != {}", name, h.sum, expected["s"]));
    }
    errors
}

fn check_quantiles(name: &str, h: &Histogram, quantiles: &Value) -> Vec<String> {
    quantiles
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|pair| {
            let q = number(&pair[0]);
            let got = h.quantile(q);
            if close_to(got, &pair[1]) {
                None
            } else {
                Some(format!("{}: quantile {} = {:?}, expected {}", name, q, got, pair[1]))
            }
        })
        .collect()
}

#[test]
fn histogram_vectors() {
    let upper = upper_bounds();
    let mut errors = Vec::new();
    let cases = vectors("histogram.json");
    for c in &cases {
        let name = c["name"].as_str().unwrap_or("?");
        match c["kind"].as_str().unwrap() {
            "index" => {
                let got = Histogram::new().bucket_index(number(&c["value"]));
                if got as u64 != c["expectIndex"].as_u64().unwrap() {
                    errors.push(format!("{}: index {} != {}", name, got, c["expectIndex"]));
                }
            }
            "bounds" => {
                if upper[0] != number(&c["first"])
                    || upper[10] != number(&c["tenth"])
                    || upper[BOUNDED - 1] != number(&c["last"])
                    || BOUNDED as u64 != c["count"].as_u64().unwrap()
                {
                    errors.push(format!("{}: bounds differ", name));
                }
            }
            "record" => {
                let h = histogram_of(c["values"].as_array().unwrap());
                errors.extend(check_encoding(name, &h, &c["expect"]));
                errors.extend(check_quantiles(name, &h, &c["quantiles"]));
            }
            "merge" => {
                let mut h = histogram_of(c["a"].as_array().unwrap());
                h.merge(&histogram_of(c["b"].as_array().unwrap()));
                errors.extend(check_encoding(name, &h, &c["expect"]));
                errors.extend(check_quantiles(name, &h, &c["quantiles"]));
            }
            "decode_error" => {
                let e = &c["encoded"];
                let refused = match e.as_object() {
                    None => true,
                    Some(_) => {
                        let pairs: Option<Vec<f64>> = e["b"].as_array().map(|b| b.iter().map(number).collect());
                        match pairs {
                            None => true,
                            Some(p) => Histogram::decode(number(&e["n"]), number(&e["s"]), number(&e["lo"]), number(&e["hi"]), &p).is_err(),
                        }
                    }
                };
                if !refused {
                    errors.push(format!("{}: decoded but must be refused", name));
                }
            }
            other => errors.push(format!("{}: unknown kind {}", name, other)),
        }
    }
    assert!(cases.len() >= 30);
    assert!(errors.is_empty(), "{} histogram mismatches:\n{}", errors.len(), errors.join("\n"));
}

#[test]
fn hmac_vectors() {
    let cases = vectors("hmac.json");
    assert!(!cases.is_empty());
    for c in &cases {
        let mut digest = [0u8; 32];
        sign_pulse(
            c["body"].as_str().unwrap().as_bytes(),
            c["timestamp"].as_str().unwrap().as_bytes(),
            c["secretKey"].as_str().unwrap().as_bytes(),
            &mut digest,
        );
        let mut hex = [0u8; 64];
        to_hex(&digest, &mut hex);
        assert_eq!(std::str::from_utf8(&hex).unwrap(), c["expect"].as_str().unwrap(), "{}", c["name"]);
    }
}
