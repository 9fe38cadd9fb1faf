//! The gate decision (docs/design.md#the-gate-decision; protocol/vectors/README.md).

/// Why a call was allowed or denied. The discriminants are the wire codes of the C ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Reason {
    Allowed = 0,
    LeaseExpired = 1,
    CapExceeded = 2,
    Suspended = 3,
    KillSignal = 4,
    TagBlocked = 5,
    GlobalBlock = 6,
    OverWeight = 7,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::LeaseExpired => "lease_expired",
            Reason::CapExceeded => "cap_exceeded",
            Reason::Suspended => "suspended",
            Reason::KillSignal => "kill_signal",
            Reason::TagBlocked => "tag_blocked",
            Reason::GlobalBlock => "global_block",
            Reason::OverWeight => "over_weight",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
}

impl Decision {
    const fn new(allowed: bool, reason: Reason) -> Self {
        Decision { allowed, reason }
    }
    /// `reason | allowed << 4`: the integer the ABI returns.
    pub fn code(self) -> u32 {
        self.reason as u32 | (self.allowed as u32) << 4
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    OverLimit,
    CapExceeded,
    Suspended,
}

impl Status {
    pub fn from_code(code: u32) -> Option<Status> {
        match code {
            0 => Some(Status::Ok),
            1 => Some(Status::OverLimit),
            2 => Some(Status::CapExceeded),
            3 => Some(Status::Suspended),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::OverLimit => "over_limit",
            Status::CapExceeded => "cap_exceeded",
            Status::Suspended => "suspended",
        }
    }
    pub fn from_name(name: &str) -> Option<Status> {
        match name {
            "ok" => Some(Status::Ok),
            "over_limit" => Some(Status::OverLimit),
            "cap_exceeded" => Some(Status::CapExceeded),
            "suspended" => Some(Status::Suspended),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Open,
    FixedRps,
    LastPolicy,
}

impl Strategy {
    pub fn from_code(code: u32) -> Option<Strategy> {
        match code {
            0 => Some(Strategy::Open),
            1 => Some(Strategy::FixedRps),
            2 => Some(Strategy::LastPolicy),
            _ => None,
        }
    }
    pub fn from_name(name: &str) -> Option<Strategy> {
        match name {
            "open" => Some(Strategy::Open),
            "fixed_rps" => Some(Strategy::FixedRps),
            "last_policy" => Some(Strategy::LastPolicy),
            _ => None,
        }
    }
}

/// The policy fields the gate reads. Per-tag limits are looked up by the caller
/// (by tag id in the ABI), so the policy itself needs no map.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// `None` when unlimited (`null` or absent on the wire).
    pub global_max_weight: Option<f64>,
    pub kill_signal: bool,
    pub status: Status,
    pub lease_duration_seconds: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            global_max_weight: None,
            kill_signal: false,
            status: Status::Ok,
            lease_duration_seconds: 60.0,
        }
    }
}

/// Per-instance state: the last sync and the safe-mode token bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GateState {
    /// Epoch ms of the last successful sync; `None` while never synced.
    pub last_sync_at: Option<f64>,
    pub strategy: Strategy,
    pub safe_mode_max_rps: f64,
    pub bucket_tokens: f64,
    /// `None` until the first safe-mode call fills the bucket.
    pub bucket_updated_at: Option<f64>,
}

impl GateState {
    pub fn new(strategy: Strategy, safe_mode_max_rps: f64) -> Self {
        let rps = if safe_mode_max_rps.is_finite() && safe_mode_max_rps >= 0.0 {
            safe_mode_max_rps
        } else {
            50.0
        };
        GateState {
            last_sync_at: None,
            strategy,
            safe_mode_max_rps: rps,
            bucket_tokens: 0.0,
            bucket_updated_at: None,
        }
    }

    /// A successful sync: the lease restarts, the next safe mode starts full.
    pub fn mark_synced(&mut self, now: f64) {
        self.last_sync_at = Some(now);
        self.bucket_updated_at = None;
    }

    fn take_safe_mode_token(&mut self, now: f64) -> bool {
        let capacity = self.safe_mode_max_rps;
        match self.bucket_updated_at {
            None => {
                self.bucket_tokens = capacity;
                self.bucket_updated_at = Some(now);
            }
            Some(updated_at) => {
                // README: elapsed is never negative (a clock going back refills nothing),
                // then `updatedAt = now` on every safe-mode call, also when the clock went back.
                let elapsed = now - updated_at;
                let elapsed = if elapsed > 0.0 { elapsed } else { 0.0 };
                let refilled = self.bucket_tokens + elapsed * capacity / 1000.0;
                self.bucket_tokens = if refilled < capacity { refilled } else { capacity };
                self.bucket_updated_at = Some(now);
            }
        }
        if self.bucket_tokens >= 1.0 {
            self.bucket_tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// NaN → 1, negative → 0.
pub fn normalize_weight(weight: f64) -> f64 {
    if weight.is_nan() {
        1.0
    } else if weight < 0.0 {
        0.0
    } else {
        weight
    }
}

/// Where the limit for a call came from (step 6).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    /// The tag has an entry; `None` for a `null` entry, which exempts the tag.
    Tag(Option<f64>),
    /// No entry: the global limit applies.
    Global,
}

/// Steps 3–8 on a policy in force (or, under `last_policy`, a stale one).
fn enforce(policy: &Policy, limit: Limit, weight: f64) -> Decision {
    // A suspended org fails open whatever the policy says; the kill switch
    // outranks a usage cap, so an operator can stop traffic past the cap.
    if policy.status == Status::Suspended {
        return Decision::new(true, Reason::Suspended);
    }
    if policy.kill_signal {
        return Decision::new(false, Reason::KillSignal);
    }
    if policy.status == Status::CapExceeded {
        return Decision::new(true, Reason::CapExceeded);
    }
    let (value, blocked) = match limit {
        Limit::Tag(v) => (v, Reason::TagBlocked),
        Limit::Global => (policy.global_max_weight, Reason::GlobalBlock),
    };
    match value {
        Some(v) if v == 0.0 => Decision::new(false, blocked),
        Some(v) if weight > v => Decision::new(false, Reason::OverWeight),
        _ => Decision::new(true, Reason::Allowed),
    }
}

/// The whole decision. `policy` is `None` before any policy was received.
pub fn decide(policy: Option<&Policy>, state: &mut GateState, now: f64, limit: Limit, weight: f64) -> Decision {
    let weight = normalize_weight(weight);
    let (policy, last_sync_at) = match (policy, state.last_sync_at) {
        (Some(p), Some(at)) => (p, at),
        // Step 1: bootstrap grace.
        _ => return Decision::new(true, Reason::Allowed),
    };
    // Step 2: the lease; exactly at expiry the policy still holds.
    if now > last_sync_at + policy.lease_duration_seconds * 1000.0 {
        let allowed = match state.strategy {
            Strategy::Open => true,
            Strategy::FixedRps => state.take_safe_mode_token(now),
            Strategy::LastPolicy => enforce(policy, limit, weight).allowed,
        };
        return Decision::new(allowed, Reason::LeaseExpired);
    }
    enforce(policy, limit, weight)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: f64 = 1_740_000_000_000.0;

    fn synced(strategy: Strategy, rps: f64) -> GateState {
        let mut s = GateState::new(strategy, rps);
        s.mark_synced(T);
        s
    }

    #[test]
    fn weight_normalisation() {
        assert_eq!(normalize_weight(f64::NAN), 1.0);
        assert_eq!(normalize_weight(-3.0), 0.0);
        assert_eq!(normalize_weight(f64::NEG_INFINITY), 0.0);
        assert_eq!(normalize_weight(f64::INFINITY), f64::INFINITY);
        assert_eq!(normalize_weight(2.5), 2.5);
        assert!(normalize_weight(-0.0) == 0.0);
    }

    #[test]
    fn decision_codes_pack_allowed_and_reason() {
        assert_eq!(Decision::new(true, Reason::Allowed).code(), 16);
        assert_eq!(Decision::new(false, Reason::OverWeight).code(), 7);
        assert_eq!(Decision::new(true, Reason::LeaseExpired).code(), 17);
    }

    #[test]
    fn bootstrap_allows_everything() {
        let p = Policy {
            kill_signal: true,
            ..Policy::default()
        };
        let mut s = GateState::new(Strategy::Open, 50.0);
        assert_eq!(
            decide(Some(&p), &mut s, T, Limit::Global, 1.0),
            Decision::new(true, Reason::Allowed)
        );
        assert_eq!(
            decide(None, &mut synced(Strategy::Open, 50.0), T, Limit::Global, 1.0),
            Decision::new(true, Reason::Allowed)
        );
    }

    #[test]
    fn lease_holds_at_expiry_and_ends_just_after() {
        let p = Policy {
            global_max_weight: Some(0.0),
            lease_duration_seconds: 60.0,
            ..Policy::default()
        };
        let mut s = synced(Strategy::Open, 50.0);
        assert_eq!(
            decide(Some(&p), &mut s, T + 60_000.0, Limit::Global, 1.0).reason,
            Reason::GlobalBlock
        );
        assert_eq!(
            decide(Some(&p), &mut s, T + 60_000.001, Limit::Global, 1.0),
            Decision::new(true, Reason::LeaseExpired)
        );
    }

    #[test]
    fn tag_entry_overrides_global_and_null_exempts() {
        let p = Policy {
            global_max_weight: Some(2.0),
            ..Policy::default()
        };
        let mut s = synced(Strategy::Open, 50.0);
        assert_eq!(decide(Some(&p), &mut s, T, Limit::Tag(None), 1e300).reason, Reason::Allowed);
        assert_eq!(decide(Some(&p), &mut s, T, Limit::Tag(Some(0.0)), 0.0).reason, Reason::TagBlocked);
        assert_eq!(decide(Some(&p), &mut s, T, Limit::Global, 3.0).reason, Reason::OverWeight);
        assert_eq!(decide(Some(&p), &mut s, T, Limit::Global, 2.0).reason, Reason::Allowed);
        assert_eq!(decide(Some(&p), &mut s, T, Limit::Tag(Some(5.0)), f64::NAN).reason, Reason::Allowed);
    }

    #[test]
    fn status_and_kill_order() {
        let mut s = synced(Strategy::Open, 50.0);
        let cap = Policy {
            status: Status::CapExceeded,
            kill_signal: true,
            ..Policy::default()
        };
        assert_eq!(
            decide(Some(&cap), &mut s, T, Limit::Global, 1.0),
            Decision::new(false, Reason::KillSignal)
        );
        let cap = Policy {
            status: Status::CapExceeded,
            global_max_weight: Some(0.0),
            ..Policy::default()
        };
        assert_eq!(
            decide(Some(&cap), &mut s, T, Limit::Global, 1.0),
            Decision::new(true, Reason::CapExceeded)
        );
        let sus = Policy {
            status: Status::Suspended,
            kill_signal: true,
            ..Policy::default()
        };
        assert_eq!(
            decide(Some(&sus), &mut s, T, Limit::Global, 1.0),
            Decision::new(true, Reason::Suspended)
        );
        let kill = Policy {
            status: Status::OverLimit,
            kill_signal: true,
            ..Policy::default()
        };
        assert_eq!(
            decide(Some(&kill), &mut s, T, Limit::Tag(None), 0.0),
            Decision::new(false, Reason::KillSignal)
        );
    }

    #[test]
    fn fixed_rps_bucket_starts_full_refills_and_ignores_clock_going_back() {
        let p = Policy {
            lease_duration_seconds: 1.0,
            ..Policy::default()
        };
        let mut s = synced(Strategy::FixedRps, 2.0);
        let t = T + 5_000.0;
        let call = |s: &mut GateState, now: f64| decide(Some(&p), s, now, Limit::Global, 1000.0).allowed;
        assert!(call(&mut s, t));
        assert!(call(&mut s, t));
        assert!(!call(&mut s, t));
        assert!(!call(&mut s, t - 1_000.0)); // back in time: nothing refilled, updatedAt = now
        assert!(!call(&mut s, t - 501.0)); // 499 ms later: 0.998 tokens
        assert!(call(&mut s, t - 1.0)); // 500 ms more: 1.998
        assert!(!call(&mut s, t - 1.0)); // 0.998
        assert!(call(&mut s, t + 100_000.0)); // refill is capped at capacity (2)
        assert!(call(&mut s, t + 100_000.0));
        assert!(!call(&mut s, t + 100_000.0));
        s.mark_synced(t + 100_000.0); // a sync resets the bucket: the next safe mode starts full
        assert!(call(&mut s, t + 200_000.0));
        assert!(call(&mut s, t + 200_000.0));
    }

    #[test]
    fn last_policy_reports_lease_expired() {
        let p = Policy {
            global_max_weight: Some(0.0),
            lease_duration_seconds: 1.0,
            ..Policy::default()
        };
        let mut s = synced(Strategy::LastPolicy, 50.0);
        assert_eq!(
            decide(Some(&p), &mut s, T + 2_000.0, Limit::Global, 1.0),
            Decision::new(false, Reason::LeaseExpired)
        );
        assert_eq!(
            decide(Some(&p), &mut s, T + 2_000.0, Limit::Tag(Some(1.0)), 1.0),
            Decision::new(true, Reason::LeaseExpired)
        );
    }

    #[test]
    fn names_round_trip() {
        for name in ["ok", "over_limit", "cap_exceeded", "suspended"] {
            assert!(Status::from_name(name).is_some());
        }
        assert_eq!(Status::from_code(4), None);
        assert_eq!(Strategy::from_name("last_policy"), Some(Strategy::LastPolicy));
        assert_eq!(Strategy::from_code(3), None);
    }
}
