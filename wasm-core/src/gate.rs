//! The gate decision (DESIGN.md "The gate decision"; protocol/vectors/README.md).

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
    /// `f64::INFINITY` when unlimited (`null` on the wire).
    pub global_max_weight: f64,
    pub kill_signal: bool,
    pub status: Status,
    pub lease_duration_seconds: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            global_max_weight: f64::INFINITY,
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
                let elapsed = now - updated_at;
                if elapsed > 0.0 {
                    let refilled = self.bucket_tokens + elapsed * capacity / 1000.0;
                    self.bucket_tokens = if refilled < capacity { refilled } else { capacity };
                    self.bucket_updated_at = Some(now);
                }
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

/// Where the limit for a call came from (step 5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    /// The tag has an entry; `f64::INFINITY` for a `null` (exempt) entry.
    Tag(f64),
    /// No entry: the global limit applies.
    Global,
}

fn enforce(policy: &Policy, limit: Limit, weight: f64) -> Decision {
    match policy.status {
        Status::CapExceeded => return Decision::new(true, Reason::CapExceeded),
        Status::Suspended => return Decision::new(true, Reason::Suspended),
        Status::Ok | Status::OverLimit => {}
    }
    if policy.kill_signal {
        return Decision::new(false, Reason::KillSignal);
    }
    let (value, blocked) = match limit {
        Limit::Tag(v) => (v, Reason::TagBlocked),
        Limit::Global => (policy.global_max_weight, Reason::GlobalBlock),
    };
    if value == 0.0 {
        Decision::new(false, blocked)
    } else if weight > value {
        Decision::new(false, Reason::OverWeight)
    } else {
        Decision::new(true, Reason::Allowed)
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
