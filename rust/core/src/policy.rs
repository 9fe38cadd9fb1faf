//! The wire policy's validation (feature `json`), exactly as the TypeScript
//! parser (`parsePolicy` in @waitstate/protocol) and zod's `PolicySchema` do it,
//! checked by `protocol/vectors/policy.json`: absent fields take their defaults
//! (absent, not `null`), unknown fields are dropped, and an invalid policy names
//! the first field at fault in schema field order.
use crate::gate::Status;
use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use serde_json::{Map, Value};

/// `MAX_TAGS_PER_POLICY`: at most this many `tagMaxWeights` entries.
pub const MAX_TAGS_PER_POLICY: usize = 4096;
/// `MAX_TAG_NAME_LENGTH`, in UTF-16 code units as JavaScript counts them.
pub const MAX_TAG_NAME_LENGTH: usize = 128;
pub const DEFAULT_PULSE_INTERVAL_MS: u64 = 5000;
pub const DEFAULT_LEASE_DURATION_SECONDS: u64 = 60;
/// `Number.MAX_SAFE_INTEGER`: integers above it do not survive JavaScript.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;
const PULSE_INTERVAL_MS: (f64, f64) = (100.0, 3_600_000.0);
const LEASE_DURATION_SECONDS: (f64, f64) = (1.0, 86_400.0);
const RETRY_AFTER_SECONDS: (f64, f64) = (1.0, 31.0 * 86_400.0);

/// A valid policy with its defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct WirePolicy {
    pub version: u64,
    /// `None` is unlimited.
    pub global_max_weight: Option<f64>,
    /// In the order JavaScript's `Object.keys` gives them; `None` exempts the tag.
    pub tag_max_weights: Vec<(String, Option<f64>)>,
    pub kill_signal: bool,
    pub status: Status,
    pub pulse_interval: u64,
    pub lease_duration_seconds: u64,
    pub issued_at: Option<u64>,
    pub retry_after_seconds: Option<u64>,
}

/// Why a policy was refused: the first field at fault (`"leaseDurationSeconds"`,
/// `"tagMaxWeights.free"`, `"(root)"`) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    pub path: String,
    pub message: &'static str,
}

impl core::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

fn fail<T>(path: &str, message: &'static str) -> Result<T, PolicyError> {
    Err(PolicyError {
        path: path.to_owned(),
        message,
    })
}

/// An integer in `[min, max]`; JSON's `1.0` is the integer 1, as in JavaScript.
fn int_in(v: &Value, (min, max): (f64, f64)) -> Option<u64> {
    let n = v.as_f64()?;
    if n >= min && n <= max && n as u64 as f64 == n {
        Some(n as u64)
    } else {
        None
    }
}

/// A weight limit: a finite number `>= 0`, or `null` (unlimited).
fn weight_limit(v: &Value) -> Result<Option<f64>, ()> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
            _ => Err(()),
        },
        _ => Err(()),
    }
}

/// JavaScript's array-index keys (`"0"` … `"4294967294"`), which `Object.keys` lists first, ascending.
fn array_index(key: &str) -> Option<u32> {
    if key.is_empty() || (key.len() > 1 && key.starts_with('0')) || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u32>().ok().filter(|i| *i != u32::MAX)
}

/// A map's keys in `Object.keys` order: array indexes ascending, then the rest as written.
fn js_key_order(map: &Map<String, Value>) -> Vec<&String> {
    let mut indexes: Vec<(u32, &String)> = map.keys().filter_map(|k| array_index(k).map(|i| (i, k))).collect();
    indexes.sort_unstable_by_key(|(i, _)| *i);
    let mut keys: Vec<&String> = indexes.into_iter().map(|(_, k)| k).collect();
    keys.extend(map.keys().filter(|k| array_index(k).is_none()));
    keys
}

fn tag_max_weights(v: &Value) -> Result<Vec<(String, Option<f64>)>, PolicyError> {
    let map = match v.as_object() {
        Some(m) => m,
        None => return fail("tagMaxWeights", "expected an object"),
    };
    if map.len() > MAX_TAGS_PER_POLICY {
        return fail("tagMaxWeights", "at most 4096 tag entries");
    }
    let mut out = Vec::with_capacity(map.len());
    for key in js_key_order(map) {
        let path = || {
            let mut p = String::from("tagMaxWeights.");
            p.push_str(key);
            p
        };
        let units = key.encode_utf16().count();
        if units == 0 || units > MAX_TAG_NAME_LENGTH {
            return Err(PolicyError {
                path: path(),
                message: "invalid key: a tag name has 1 to 128 characters",
            });
        }
        match weight_limit(&map[key.as_str()]) {
            Ok(limit) => out.push((key.clone(), limit)),
            Err(()) => {
                return Err(PolicyError {
                    path: path(),
                    message: "expected a non-negative number or null",
                })
            }
        }
    }
    Ok(out)
}

/// Validates a policy as received (parsed JSON). Never panics.
///
/// ```ignore
/// let p = parse_policy(&serde_json::json!({"tagMaxWeights": {"free": 0}})).unwrap();
/// assert_eq!(p.lease_duration_seconds, 60);
/// ```
pub fn parse_policy(input: &Value) -> Result<WirePolicy, PolicyError> {
    let o = match input.as_object() {
        Some(o) => o,
        None => return fail("(root)", "expected an object"),
    };
    let version = match o.get("version") {
        None => 0,
        Some(v) => match int_in(v, (0.0, MAX_SAFE_INTEGER)) {
            Some(n) => n,
            None => return fail("version", "expected a non-negative integer"),
        },
    };
    let global_max_weight = match o.get("globalMaxWeight").map(weight_limit) {
        None => None,
        Some(Ok(limit)) => limit,
        Some(Err(())) => return fail("globalMaxWeight", "expected a non-negative number or null"),
    };
    let tag_max_weights = match o.get("tagMaxWeights") {
        None => Vec::new(),
        Some(v) => tag_max_weights(v)?,
    };
    let kill_signal = match o.get("killSignal") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return fail("killSignal", "expected a boolean"),
    };
    let status = match o.get("status") {
        None => Status::Ok,
        Some(v) => match v.as_str().and_then(Status::from_name) {
            Some(s) => s,
            None => return fail("status", "expected one of ok, over_limit, cap_exceeded, suspended"),
        },
    };
    let pulse_interval = match o.get("pulseInterval") {
        None => DEFAULT_PULSE_INTERVAL_MS,
        Some(v) => match int_in(v, PULSE_INTERVAL_MS) {
            Some(n) => n,
            None => return fail("pulseInterval", "expected an integer of ms between 100 and 3600000"),
        },
    };
    let lease_duration_seconds = match o.get("leaseDurationSeconds") {
        None => DEFAULT_LEASE_DURATION_SECONDS,
        Some(v) => match int_in(v, LEASE_DURATION_SECONDS) {
            Some(n) => n,
            None => return fail("leaseDurationSeconds", "expected an integer of seconds between 1 and 86400"),
        },
    };
    let issued_at = match o.get("issuedAt") {
        None => None,
        Some(v) => match int_in(v, (0.0, MAX_SAFE_INTEGER)) {
            Some(n) => Some(n),
            None => return fail("issuedAt", "expected epoch milliseconds"),
        },
    };
    let retry_after_seconds = match o.get("retryAfterSeconds") {
        None => None,
        Some(v) => match int_in(v, RETRY_AFTER_SECONDS) {
            Some(n) => Some(n),
            None => return fail("retryAfterSeconds", "expected an integer of seconds between 1 and 2678400"),
        },
    };
    Ok(WirePolicy {
        version,
        global_max_weight,
        tag_max_weights,
        kill_signal,
        status,
        pulse_interval,
        lease_duration_seconds,
        issued_at,
        retry_after_seconds,
    })
}

impl WirePolicy {
    /// The fields the gate reads.
    pub fn gate_policy(&self) -> crate::gate::Policy {
        crate::gate::Policy {
            global_max_weight: self.global_max_weight,
            kill_signal: self.kill_signal,
            status: self.status,
            lease_duration_seconds: self.lease_duration_seconds as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use serde_json::json;

    #[test]
    fn keys_in_object_keys_order() {
        let v: Value = serde_json::from_str(r#"{"b": 1, "10": 1, "a": 1, "2": 1, "01": 1, "4294967295": 1}"#).unwrap();
        let keys: Vec<&str> = js_key_order(v.as_object().unwrap()).into_iter().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["2", "10", "b", "a", "01", "4294967295"]);
    }

    #[test]
    fn the_first_bad_tag_in_key_order_is_named() {
        let v: Value = serde_json::from_str(r#"{"tagMaxWeights": {"z": -1, "7": -1}}"#).unwrap();
        assert_eq!(parse_policy(&v).unwrap_err().path, "tagMaxWeights.7");
    }

    #[test]
    fn defaults_and_gate_fields() {
        let p = parse_policy(&json!({"killSignal": true, "leaseDurationSeconds": 30.0})).unwrap();
        assert_eq!(
            (p.version, p.pulse_interval, p.lease_duration_seconds, p.status),
            (0, 5000, 30, Status::Ok)
        );
        assert!(p.gate_policy().kill_signal);
        assert_eq!(
            parse_policy(&json!({"leaseDurationSeconds": 0.5})).unwrap_err().to_string(),
            "leaseDurationSeconds: expected an integer of seconds between 1 and 86400"
        );
    }
}
