//! The policy the gate answers from: the wire policy, validated exactly as the
//! TypeScript schema does it (`waitstate_core::policy`, checked by
//! `protocol/vectors/policy.json`), with its tag limits in a hash map so a gate
//! call finds its tag without allocating.
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use rustc_hash::FxHasher;
pub use waitstate_core::gate::Status as PolicyStatus;
use waitstate_core::policy::{parse_policy, WirePolicy};

pub use waitstate_core::policy::PolicyError;

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A validated policy (`docs/protocol.md`, "The policy").
///
/// ```
/// use waitstate::Policy;
/// let p = Policy::from_json(r#"{"version": 3, "tagMaxWeights": {"free": 0}}"#).unwrap();
/// assert_eq!(p.version(), 3);
/// assert_eq!(p.tag_limit("free"), Some(Some(0.0)));
/// assert!(Policy::from_json(r#"{"leaseDurationSeconds": 0.5}"#).is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub(crate) wire: WirePolicy,
    pub(crate) tags: FxMap<Box<str>, Option<f64>>,
    /// Installed from an invalid policy whose `killSignal` was `true`.
    pub(crate) kill_only: bool,
}

impl Policy {
    /// Parses and validates a policy as the control plane sends it.
    pub fn from_json(text: &str) -> Result<Policy, PolicyError> {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => Policy::from_value(&value),
            Err(_) => Err(PolicyError {
                path: "(root)".into(),
                message: "not JSON",
            }),
        }
    }

    /// Validates a policy already parsed as JSON.
    pub fn from_value(value: &serde_json::Value) -> Result<Policy, PolicyError> {
        parse_policy(value).map(Policy::from_wire)
    }

    pub(crate) fn from_wire(wire: WirePolicy) -> Policy {
        let tags = wire.tag_max_weights.iter().map(|(k, v)| (k.as_str().into(), *v)).collect();
        Policy {
            wire,
            tags,
            kill_only: false,
        }
    }

    /// What an invalid policy that says `killSignal: true` at the top level
    /// becomes (`killSwitchPolicy` of the TypeScript): every call denied
    /// (`kill_signal`) until a valid policy arrives; its `version`,
    /// `pulseInterval`, `leaseDurationSeconds` and `issuedAt` are kept when
    /// they are valid. `None` when the input does not say `killSignal: true`.
    ///
    /// ```
    /// use waitstate::Policy;
    /// let v = serde_json::json!({"killSignal": true, "status": "bogus", "version": 7});
    /// let p = Policy::kill_switch(&v).unwrap();
    /// assert!(p.kill_signal() && p.is_kill_only());
    /// assert_eq!(p.version(), 7);
    /// assert!(Policy::kill_switch(&serde_json::json!({"killSignal": false})).is_none());
    /// ```
    pub fn kill_switch(value: &serde_json::Value) -> Option<Policy> {
        if value.get("killSignal") != Some(&serde_json::Value::Bool(true)) {
            return None;
        }
        let int = |name: &str, min: f64, max: f64| -> Option<u64> {
            let n = value.get(name)?.as_f64()?;
            if n >= min && n <= max && n.fract() == 0.0 {
                Some(n as u64)
            } else {
                None
            }
        };
        const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
        let mut p = Policy::from_wire(WirePolicy {
            version: int("version", 0.0, MAX_SAFE).unwrap_or(0),
            global_max_weight: None,
            tag_max_weights: Vec::new(),
            kill_signal: true,
            // The kill switch is obeyed whatever status the policy claims.
            status: PolicyStatus::Ok,
            pulse_interval: int("pulseInterval", 100.0, 3_600_000.0).unwrap_or(waitstate_core::policy::DEFAULT_PULSE_INTERVAL_MS),
            lease_duration_seconds: int("leaseDurationSeconds", 1.0, 86_400.0)
                .unwrap_or(waitstate_core::policy::DEFAULT_LEASE_DURATION_SECONDS),
            issued_at: int("issuedAt", 0.0, MAX_SAFE),
            retry_after_seconds: None,
        });
        p.kill_only = true;
        Some(p)
    }

    pub fn version(&self) -> u64 {
        self.wire.version
    }
    pub fn status(&self) -> PolicyStatus {
        self.wire.status
    }
    pub fn kill_signal(&self) -> bool {
        self.wire.kill_signal
    }
    /// `None`: unlimited.
    pub fn global_max_weight(&self) -> Option<f64> {
        self.wire.global_max_weight
    }
    /// The tag's entry: `None` without one, `Some(None)` for an exempt (`null`) tag.
    pub fn tag_limit(&self, tag: &str) -> Option<Option<f64>> {
        self.tags.get(tag).copied()
    }
    /// The tags with an entry, in the order the control plane listed them.
    pub fn tag_names(&self) -> impl Iterator<Item = &str> {
        self.wire.tag_max_weights.iter().map(|(k, _)| k.as_str())
    }
    /// Milliseconds between pulses.
    pub fn pulse_interval_ms(&self) -> u64 {
        self.wire.pulse_interval
    }
    pub fn lease_duration_seconds(&self) -> u64 {
        self.wire.lease_duration_seconds
    }
    pub fn issued_at(&self) -> Option<u64> {
        self.wire.issued_at
    }
    pub fn retry_after_seconds(&self) -> Option<u64> {
        self.wire.retry_after_seconds
    }
    /// True for the kill-only policy installed from an invalid policy that said `killSignal: true`.
    pub fn is_kill_only(&self) -> bool {
        self.kill_only
    }
}
