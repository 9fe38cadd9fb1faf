//! The shared JSON vectors of `protocol/vectors/` through this crate's public
//! API: the gate (`Gate`), the policy validator (`Policy`), histograms as the
//! crate encodes them into pulses, pulse and key-exchange signatures, and the
//! lifecycle rules.
use serde_json::{json, Value};
use std::path::PathBuf;
use waitstate::lifecycle::{self, Action, Event, LifecyclePolicy, LifecycleState, PolicySource, TokenEvent, TokenState};
use waitstate::policy::PolicyStatus;
use waitstate::telemetry::{build_pulses, PulseMeta, Telemetry, PULSE_BODY_BUDGET};
use waitstate::{Gate, Policy, SafeModeStrategy, TakenCounts};

fn file(name: &str) -> Value {
    let dir = std::env::var_os("WAITSTATE_VECTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../protocol/vectors"));
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {}", path.display(), e));
    serde_json::from_str(&text).expect("vector file is JSON")
}

fn cases(name: &str) -> Vec<Value> {
    file(name)["cases"].as_array().expect("cases").clone()
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

// ---------------------------------------------------------------- gate

/// Runs one gate case through a fresh `Gate`; returns the calls whose result differs.
fn run_gate_case(c: &Value) -> Vec<String> {
    let config = &c["config"];
    let strategy = match config["safeModeStrategy"].as_str() {
        Some("fixed_rps") => SafeModeStrategy::FixedRps,
        Some("last_policy") => SafeModeStrategy::LastPolicy,
        _ => SafeModeStrategy::Open,
    };
    let rps = config.get("safeModeMaxRps").map(number).unwrap_or(50.0);
    let gate = Gate::new(strategy, rps);
    let policy = if c["policy"].is_null() {
        None
    } else {
        Some(Policy::from_value(&c["policy"]).unwrap_or_else(|e| panic!("{}: policy invalid: {}", c["name"], e)))
    };
    gate.install_at(policy, c["lastSyncAt"].as_f64());
    let mut mismatches = Vec::new();
    for (i, call) in c["calls"].as_array().expect("calls").iter().enumerate() {
        let tag = call["tag"].as_str().unwrap_or("");
        let weight = call.get("weight").map(number).unwrap_or(1.0);
        let r = gate.gate_at(tag, weight, number(&call["now"]));
        let (allowed, reason) = (
            call["expect"]["allowed"].as_bool().unwrap(),
            call["expect"]["reason"].as_str().unwrap(),
        );
        if r.allowed != allowed || r.reason.as_str() != reason {
            mismatches.push(format!(
                "{} / call {}: expected ({}, {}), got ({}, {})",
                c["name"],
                i,
                allowed,
                reason,
                r.allowed,
                r.reason.as_str()
            ));
        }
    }
    mismatches
}

#[test]
fn gate_vectors_through_the_gate() {
    let cases = cases("gate.json");
    assert!(cases.len() >= 60);
    let mismatches: Vec<String> = cases.iter().flat_map(run_gate_case).collect();
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}

#[test]
fn a_broken_gate_vector_fails() {
    let mut broken = cases("gate.json")[0].clone();
    let flipped = !broken["calls"][0]["expect"]["allowed"].as_bool().unwrap();
    broken["calls"][0]["expect"]["allowed"] = Value::Bool(flipped);
    assert_eq!(run_gate_case(&broken).len(), 1);
}

#[test]
fn gate_counts_every_vector_call_once() {
    let mut calls = 0u64;
    let mut denied = 0u64;
    let gate = Gate::default();
    for c in cases("gate.json") {
        let policy = if c["policy"].is_null() {
            None
        } else {
            Policy::from_value(&c["policy"]).ok()
        };
        gate.install_at(policy, c["lastSyncAt"].as_f64());
        for call in c["calls"].as_array().unwrap() {
            let r = gate.gate_at(
                call["tag"].as_str().unwrap_or(""),
                call.get("weight").map(number).unwrap_or(1.0),
                number(&call["now"]),
            );
            calls += 1;
            denied += u64::from(!r.allowed);
        }
    }
    let taken = gate.take_counts();
    assert_eq!((taken.usage_delta, taken.bounced_units), (calls, denied));
    assert_eq!(taken.tags.iter().map(|t| t.1).sum::<u64>(), calls);
    assert_eq!(gate.take_counts().usage_delta, 0);
}

// ---------------------------------------------------------------- policy

fn wire_json(p: &Policy) -> Value {
    let mut tags = serde_json::Map::new();
    let input_order = p.tag_names();
    for name in input_order {
        tags.insert(name.to_string(), p.tag_limit(name).flatten().map_or(Value::Null, |v| json!(v)));
    }
    let mut out = json!({
        "version": p.version(),
        "globalMaxWeight": p.global_max_weight(),
        "tagMaxWeights": tags,
        "killSignal": p.kill_signal(),
        "status": p.status().as_str(),
        "pulseInterval": p.pulse_interval_ms(),
        "leaseDurationSeconds": p.lease_duration_seconds(),
    });
    if let Some(at) = p.issued_at() {
        out["issuedAt"] = json!(at);
    }
    if let Some(s) = p.retry_after_seconds() {
        out["retryAfterSeconds"] = json!(s);
    }
    out
}

/// Numbers compared as f64 (`10` and `10.0` are the same policy).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).map_or(false, |w| same(v, w))),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w)),
        _ => a == b,
    }
}

#[test]
fn policy_vectors() {
    let cases = cases("policy.json");
    assert!(cases.len() >= 20);
    let mut errors = Vec::new();
    for c in &cases {
        let name = c["name"].as_str().unwrap_or("?");
        match (Policy::from_value(&c["input"]), c["valid"].as_bool().unwrap()) {
            (Ok(p), true) => {
                if !same(&wire_json(&p), &c["policy"]) {
                    errors.push(format!("{}: {} != {}", name, wire_json(&p), c["policy"]));
                }
            }
            (Err(e), false) => {
                if let Some(path) = c.get("path").and_then(|p| p.as_str()) {
                    if e.path != path {
                        errors.push(format!("{}: path {} != {}", name, e.path, path));
                    }
                }
            }
            (Ok(_), false) => errors.push(format!("{}: accepted, must be refused", name)),
            (Err(e), true) => errors.push(format!("{}: refused ({}), must be accepted", name, e)),
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

// ---------------------------------------------------------------- histogram, as pulses carry it

fn record_all(t: &mut Telemetry, values: &Value, tag: &str) {
    for v in values.as_array().unwrap() {
        // The vectors also record refused values (NaN, negative): the crate refuses them too.
        let _ = t.report_latency(number(v), Some(tag));
    }
}

fn encoded_matches(got: Option<&Value>, want: &Value) -> Result<(), String> {
    let empty = json!({"n": 0, "s": 0, "lo": 0, "hi": 0, "b": []});
    let got = got.unwrap_or(&empty);
    let sum_ok = {
        let (g, w) = (number(&got["s"]), number(&want["s"]));
        g == w || (g - w).abs() <= 1e-9 * w.abs()
    };
    let rest = ["n", "lo", "hi", "b"].iter().all(|k| same(&got[*k], &want[*k]));
    if sum_ok && rest {
        Ok(())
    } else {
        Err(format!("{} != {}", got, want))
    }
}

#[test]
fn histogram_vectors_as_encoded_in_pulses() {
    let meta = PulseMeta {
        instance_id: "i",
        site_id: None,
        ts: 1,
        prev_ts: None,
    };
    let mut checked = 0;
    let mut errors = Vec::new();
    for c in cases("histogram.json") {
        let mut t = Telemetry::default();
        match c["kind"].as_str().unwrap() {
            "record" => record_all(&mut t, &c["values"], "a"),
            "merge" => {
                record_all(&mut t, &c["a"], "a");
                record_all(&mut t, &c["b"], "b");
            }
            _ => continue,
        }
        let pulses = build_pulses(&TakenCounts::default(), &t.take(), &meta, PULSE_BODY_BUDGET);
        let body: Value = serde_json::from_str(&pulses[0].body).unwrap();
        // The site-wide histogram merges every tag's: for "merge" it is a ∪ b.
        if let Err(e) = encoded_matches(body["metrics"].get("latencyHistogram"), &c["expect"]) {
            errors.push(format!("{}: {}", c["name"], e));
        }
        checked += 1;
    }
    assert!(checked >= 10);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

// ---------------------------------------------------------------- signatures

#[test]
fn hmac_vectors() {
    let cases = cases("hmac.json");
    assert!(!cases.is_empty());
    for c in &cases {
        let got = waitstate::signing::pulse_signature(
            c["body"].as_str().unwrap(),
            c["timestamp"].as_str().unwrap(),
            c["secretKey"].as_str().unwrap(),
        );
        assert_eq!(got, c["expect"].as_str().unwrap(), "{}", c["name"]);
    }
}

#[test]
fn token_exchange_vectors() {
    let f = file("token-exchange.json");
    assert_eq!(f["prefix"].as_str().unwrap(), waitstate::signing::TOKEN_EXCHANGE_PREFIX);
    let cases = f["cases"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for c in cases {
        let got = waitstate::signing::token_exchange_signature(
            c["body"].as_str().unwrap(),
            c["timestamp"].as_str().unwrap(),
            c["secretKey"].as_str().unwrap(),
        );
        assert_eq!(got, c["expect"].as_str().unwrap(), "{}", c["name"]);
        // The signed string is not a pulse's: the pulse signature of the same body differs.
        assert_ne!(
            got,
            waitstate::signing::pulse_signature(
                c["body"].as_str().unwrap(),
                c["timestamp"].as_str().unwrap(),
                c["secretKey"].as_str().unwrap()
            )
        );
    }
}

// ---------------------------------------------------------------- lifecycle

fn opt(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn policy_of(v: &Value) -> LifecyclePolicy {
    LifecyclePolicy {
        status: PolicyStatus::from_name(v["status"].as_str().unwrap()).unwrap(),
        pulse_interval: number(&v["pulseInterval"]),
        lease_duration_seconds: number(&v["leaseDurationSeconds"]),
        issued_at: opt(&v["issuedAt"]),
        retry_after_seconds: opt(&v["retryAfterSeconds"]),
    }
}

fn opt_json(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |x| json!(x))
}

fn function_result(f: &str, a: &Value) -> Value {
    let status = |v: &Value| v.as_f64().map(|s| s as u16);
    match f {
        "pulseDelayMs" => json!(lifecycle::pulse_delay_ms(number(&a["intervalMs"]), number(&a["random"]))),
        "pollDelayMs" => json!(lifecycle::poll_delay_ms(number(&a["intervalMs"]), number(&a["random"]))),
        "backoffMs" => json!(lifecycle::backoff_ms(
            number(&a["intervalMs"]),
            number(&a["leaseMs"]),
            a["failures"].as_u64().unwrap() as u32,
            number(&a["random"])
        )),
        "policyPacing" => {
            let p = lifecycle::pacing(&policy_of(&a["policy"]));
            json!({"intervalMs": opt_json(p.interval_ms), "leaseSeconds": p.lease_seconds, "standDownMs": opt_json(p.stand_down_ms)})
        }
        "classifyPulseAnswer" => json!(lifecycle::classify_pulse_answer(
            status(&a["status"]),
            a["counted"].as_bool().unwrap(),
            a["policyValid"].as_bool().unwrap()
        )
        .as_str()),
        "pulseLeavesOutbox" => {
            let outcome = match a["outcome"].as_str().unwrap() {
                "policy" => lifecycle::PulseOutcome::Policy,
                "counted" => lifecycle::PulseOutcome::Counted,
                "not_delivered" => lifecycle::PulseOutcome::NotDelivered,
                "rejected" => lifecycle::PulseOutcome::Rejected,
                _ => lifecycle::PulseOutcome::Retry,
            };
            json!(lifecycle::pulse_leaves_outbox(outcome))
        }
        "classifyPollAnswer" => {
            json!(lifecycle::classify_poll_answer(status(&a["status"]), a["policyValid"].as_bool().unwrap()).as_str())
        }
        "tokenRefreshDelayMs" => json!(lifecycle::token_refresh_delay_ms(number(&a["expiresAt"]), number(&a["now"]))),
        "tokenRetryDelayMs" => json!(lifecycle::token_retry_delay_ms(
            a["failures"].as_u64().unwrap() as u32,
            number(&a["random"])
        )),
        "roundMs" => json!(lifecycle::round_ms(number(&a["ms"]))),
        other => panic!("unknown function {}", other),
    }
}

#[test]
fn lifecycle_function_vectors() {
    let f = file("lifecycle.json");
    let functions = f["functions"].as_array().unwrap();
    assert!(functions.len() >= 60);
    let errors: Vec<String> = functions
        .iter()
        .filter_map(|c| {
            let got = function_result(c["fn"].as_str().unwrap(), &c["args"]);
            (!same(&got, &c["expect"])).then(|| format!("{}: {} != {}", c["name"], got, c["expect"]))
        })
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

fn state_json(s: &LifecycleState) -> Value {
    json!({
        "intervalMs": s.interval_ms, "leaseMs": s.lease_ms, "lastSyncAt": opt_json(s.last_sync_at),
        "policyIssuedAt": opt_json(s.policy_issued_at), "safeMode": s.safe_mode,
        "suspendedUntil": opt_json(s.suspended_until), "failures": s.failures,
        "nextPulseAt": opt_json(s.next_pulse_at), "nextPollAt": opt_json(s.next_poll_at), "stopped": s.stopped,
    })
}

fn apply_state(s: &mut LifecycleState, v: &Value) {
    let o = match v.as_object() {
        Some(o) => o,
        None => return,
    };
    for (k, v) in o {
        match k.as_str() {
            "intervalMs" => s.interval_ms = number(v),
            "leaseMs" => s.lease_ms = number(v),
            "lastSyncAt" => s.last_sync_at = opt(v),
            "policyIssuedAt" => s.policy_issued_at = opt(v),
            "safeMode" => s.safe_mode = v.as_bool().unwrap(),
            "suspendedUntil" => s.suspended_until = opt(v),
            "failures" => s.failures = v.as_u64().unwrap() as u32,
            "nextPulseAt" => s.next_pulse_at = opt(v),
            "nextPollAt" => s.next_poll_at = opt(v),
            "stopped" => s.stopped = v.as_bool().unwrap(),
            other => panic!("unknown state field {}", other),
        }
    }
}

fn event_of(e: &Value) -> Event {
    let now = number(&e["now"]);
    let random = e.get("random").map(number).unwrap_or(0.0);
    match e["type"].as_str().unwrap() {
        "start" => Event::Start { now, random },
        "pulse_started" => Event::PulseStarted { now },
        "pulse_done" => Event::PulseDone {
            now,
            delivered: e["delivered"].as_bool().unwrap(),
            random,
        },
        "poll_due" => Event::PollDue {
            now,
            authenticated: e["authenticated"].as_bool().unwrap(),
            random,
        },
        "poll_done" => Event::PollDone { now, random },
        "policy" => Event::Policy {
            now,
            source: if e["source"] == "poll" {
                PolicySource::Poll
            } else {
                PolicySource::Pulse
            },
            policy: policy_of(&e["policy"]),
        },
        "not_modified" => Event::NotModified { now },
        "lease_check" => Event::LeaseCheck { now },
        "resume" => Event::Resume { now, random },
        "stop" => Event::Stop { now },
        other => panic!("unknown event {}", other),
    }
}

/// Every field the expectation names must equal the state's.
fn subset(name: &str, got: &Value, want: &Value, errors: &mut Vec<String>) {
    for (k, w) in want.as_object().unwrap() {
        if !same(&got[k], w) {
            errors.push(format!("{}: {} = {}, expected {}", name, k, got[k], w));
        }
    }
}

#[test]
fn lifecycle_client_vectors() {
    let f = file("lifecycle.json");
    let cases = f["client"].as_array().unwrap();
    assert!(cases.len() >= 15);
    let mut errors = Vec::new();
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let mut state = LifecycleState::new(number(&c["pulseIntervalMs"]));
        apply_state(&mut state, &c["state"]);
        for (i, s) in c["steps"].as_array().unwrap().iter().enumerate() {
            let label = format!("{} / step {}", name, i);
            if let Some(at) = s.get("due") {
                let d = lifecycle::due(&state, number(at));
                let got = json!({"resume": d.resume, "pulse": d.pulse, "poll": d.poll, "leaseCheck": d.lease_check,
                    "wakeAt": opt_json(lifecycle::next_wake_at(&state))});
                subset(&label, &got, &s["expect"], &mut errors);
            } else {
                let (next, actions) = lifecycle::step(&state, event_of(&s["event"]));
                state = next;
                let names: Vec<&str> = actions.iter().map(|a: &Action| a.as_str()).collect();
                if let Some(want) = s["expect"].get("actions") {
                    if !same(&json!(names), want) {
                        errors.push(format!("{}: actions {:?}, expected {}", label, names, want));
                    }
                }
                if let Some(want) = s["expect"].get("state") {
                    subset(&label, &state_json(&state), want, &mut errors);
                }
            }
        }
    }
    assert!(errors.is_empty(), "{} mismatches:\n{}", errors.len(), errors.join("\n"));
}

#[test]
fn lifecycle_token_vectors() {
    let f = file("lifecycle.json");
    let cases = f["token"].as_array().unwrap();
    assert!(cases.len() >= 5);
    let mut errors = Vec::new();
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let mut state = TokenState::default();
        if let Some(s) = c["state"].as_object() {
            state.expires_at = number(&s["expiresAt"]);
            state.failures = s["failures"].as_u64().unwrap() as u32;
            state.refresh_at = opt(&s["refreshAt"]);
        }
        for (i, s) in c["steps"].as_array().unwrap().iter().enumerate() {
            let label = format!("{} / step {}", name, i);
            if let Some(at) = s.get("due") {
                if json!(lifecycle::token_due(&state, number(at))) != s["expect"] {
                    errors.push(format!("{}: due at {} != {}", label, at, s["expect"]));
                }
                continue;
            }
            let e = &s["event"];
            let now = number(&e["now"]);
            let event = match e["type"].as_str().unwrap() {
                "token_start" => TokenEvent::Start { now },
                "token_issued" => TokenEvent::Issued {
                    now,
                    expires_at: number(&e["expiresAt"]),
                },
                "token_failed" => TokenEvent::Failed {
                    now,
                    random: number(&e["random"]),
                },
                "token_rejected" => TokenEvent::Rejected { now },
                other => panic!("unknown token event {}", other),
            };
            state = lifecycle::step_token(&state, event);
            let got = json!({"expiresAt": state.expires_at, "failures": state.failures, "refreshAt": opt_json(state.refresh_at)});
            if let Some(want) = s["expect"].get("state") {
                subset(&label, &got, want, &mut errors);
            }
            if let Some(usable) = s["expect"].get("usable") {
                for pair in usable.as_array().unwrap() {
                    if lifecycle::token_usable(&state, number(&pair[0])) != pair[1].as_bool().unwrap() {
                        errors.push(format!("{}: usable at {} != {}", label, pair[0], pair[1]));
                    }
                }
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
