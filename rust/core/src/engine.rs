//! One gate instance as a value: the policy in force (double-buffered, so a
//! partial load never becomes active), the gate state with its safe-mode bucket,
//! per-tag limits and counters indexed by small integer tag ids. The caller
//! assigns the ids (the JavaScript side of the wasm module caches them in a
//! Map), so the engine never sees tag strings and a call is array reads.
//!
//! `waitstate-wasm` holds one `Engine` and converts its C ABI to these methods.
use crate::gate::{decide, Decision, GateState, Limit, Policy, Reason, Status, Strategy};

/// Tag ids are `0..MAX_TAGS`; a larger id gates by the global limit and is not counted.
pub const MAX_TAGS: usize = 4096;
/// Set in a [`Engine::gate`] code when the call was allowed.
pub const ALLOWED_BIT: u32 = 16;

/// Why a call into the engine was refused. Nothing changes when one is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// An argument out of its range (unknown code, NaN, negative limit…).
    Argument,
    /// Not valid now (a tag entry without a staged policy, a sync without a policy).
    State,
    /// A tag id `>= MAX_TAGS`.
    TooLong,
}

struct Limits {
    value: [f64; MAX_TAGS],
    /// 1 when the tag has an entry in the policy (zero-initialised: no data segment in wasm).
    has: [u8; MAX_TAGS],
    /// One past the highest id with an entry, so commits copy only what is used.
    used: usize,
}

const EMPTY_LIMITS: Limits = Limits {
    value: [0.0; MAX_TAGS],
    has: [0; MAX_TAGS],
    used: 0,
};
const DEFAULT_POLICY: Policy = Policy {
    global_max_weight: None,
    kill_signal: false,
    status: Status::Ok,
    lease_duration_seconds: 60.0,
};

pub struct Engine {
    active: Policy,
    has_policy: bool,
    /// Until when (epoch ms, inclusive) the fast path of [`Engine::gate`] is
    /// exact: the lease holds and the policy is ordinary (status ok/over_limit,
    /// no kill). -Infinity when it never is. Recomputed on every sync.
    fast_until: f64,
    limits: Limits,
    staged: Policy,
    staging: bool,
    staged_limits: Limits,
    state: GateState,
    calls: [u32; MAX_TAGS],
    bounced: [u32; MAX_TAGS],
}

fn is_limit(v: f64) -> bool {
    v >= 0.0 // excludes NaN; +Infinity stands for unlimited (null)
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// Never synced, safe mode `open` at 50 rps. `const`, so a static can hold one.
    pub const fn new() -> Self {
        Engine {
            active: DEFAULT_POLICY,
            has_policy: false,
            fast_until: f64::NEG_INFINITY,
            limits: EMPTY_LIMITS,
            staged: DEFAULT_POLICY,
            staging: false,
            staged_limits: EMPTY_LIMITS,
            state: GateState {
                last_sync_at: None,
                strategy: Strategy::Open,
                safe_mode_max_rps: 50.0,
                bucket_tokens: 0.0,
                bucket_updated_at: None,
            },
            calls: [0; MAX_TAGS],
            bounced: [0; MAX_TAGS],
        }
    }

    fn refresh_fast_path(&mut self) {
        let p = &self.active;
        let ordinary = matches!(p.status, Status::Ok | Status::OverLimit) && !p.kill_signal;
        self.fast_until = match (self.has_policy && ordinary, self.state.last_sync_at) {
            (true, Some(at)) => at + p.lease_duration_seconds * 1000.0,
            _ => f64::NEG_INFINITY,
        };
    }

    /// Safe-mode configuration; `safe_mode_max_rps` finite and `>= 0`.
    pub fn configure(&mut self, strategy: Strategy, safe_mode_max_rps: f64) -> Result<(), Error> {
        if !(safe_mode_max_rps >= 0.0 && safe_mode_max_rps.is_finite()) {
            return Err(Error::Argument);
        }
        self.state.strategy = strategy;
        self.state.safe_mode_max_rps = safe_mode_max_rps;
        self.state.bucket_updated_at = None;
        Ok(())
    }

    /// Starts staging a policy (tag entries follow with [`Engine::policy_tag`]).
    pub fn policy_begin(&mut self, policy: Policy) -> Result<(), Error> {
        let global_ok = match policy.global_max_weight {
            None => true,
            Some(v) => is_limit(v) && v != f64::INFINITY,
        };
        let lease = policy.lease_duration_seconds;
        if !(global_ok && lease > 0.0 && lease.is_finite()) {
            return Err(Error::Argument);
        }
        self.staged = policy;
        let used = self.staged_limits.used;
        self.staged_limits.has[..used].fill(0);
        self.staged_limits.used = 0;
        self.staging = true;
        Ok(())
    }

    /// Stages a tag entry; `limit` is `None` for a `null` (exempt) entry.
    pub fn policy_tag(&mut self, tag_id: u32, limit: Option<f64>) -> Result<(), Error> {
        if !self.staging {
            return Err(Error::State);
        }
        let id = tag_id as usize;
        if id >= MAX_TAGS {
            return Err(Error::TooLong);
        }
        let value = match limit {
            None => f64::INFINITY,
            Some(v) if is_limit(v) => v,
            Some(_) => return Err(Error::Argument),
        };
        self.staged_limits.value[id] = value;
        self.staged_limits.has[id] = 1;
        if id + 1 > self.staged_limits.used {
            self.staged_limits.used = id + 1;
        }
        Ok(())
    }

    /// Makes the staged policy active, as synced at `synced_at` (epoch ms).
    pub fn policy_commit(&mut self, synced_at: f64) -> Result<(), Error> {
        if !self.staging || !synced_at.is_finite() {
            return Err(Error::State);
        }
        let clear = self.limits.used;
        self.limits.has[..clear].fill(0);
        let used = self.staged_limits.used;
        self.limits.value[..used].copy_from_slice(&self.staged_limits.value[..used]);
        self.limits.has[..used].copy_from_slice(&self.staged_limits.has[..used]);
        self.limits.used = used;
        self.active = self.staged;
        self.has_policy = true;
        self.staging = false;
        self.state.mark_synced(synced_at);
        self.refresh_fast_path();
        Ok(())
    }

    /// A sync that confirmed the current policy (for example a 304): the lease restarts.
    pub fn mark_synced(&mut self, synced_at: f64) -> Result<(), Error> {
        if !self.has_policy || !synced_at.is_finite() {
            return Err(Error::State);
        }
        self.state.mark_synced(synced_at);
        self.refresh_fast_path();
        Ok(())
    }

    /// Forgets the policy: back to bootstrap (everything allowed, no lease).
    pub fn reset(&mut self) {
        self.has_policy = false;
        self.state.last_sync_at = None;
        self.state.bucket_updated_at = None;
        self.fast_until = f64::NEG_INFINITY;
    }

    /// The gate, counted per tag: `reason | allowed << 4` (see [`Decision::code`]).
    /// Never fails: any id and any floats give a code in `0..32`.
    #[inline]
    pub fn gate(&mut self, tag_id: u32, weight: f64, now: f64) -> u32 {
        let id = tag_id as usize;
        if id < MAX_TAGS && now <= self.fast_until {
            // Lease holding, ordinary policy: steps 1–5 cannot apply (see `fast_until`).
            let has_entry = self.limits.has[id] == 1;
            let limit = if has_entry {
                self.limits.value[id]
            } else {
                self.active.global_max_weight.unwrap_or(f64::INFINITY)
            };
            let w = if weight >= 0.0 {
                weight
            } else if weight.is_nan() {
                1.0
            } else {
                0.0
            };
            let code = if limit == 0.0 {
                if has_entry {
                    Reason::TagBlocked as u32
                } else {
                    Reason::GlobalBlock as u32
                }
            } else if w > limit {
                Reason::OverWeight as u32
            } else {
                Reason::Allowed as u32 | ALLOWED_BIT
            };
            self.calls[id] = self.calls[id].wrapping_add(1);
            self.bounced[id] = self.bounced[id].wrapping_add((code & ALLOWED_BIT == 0) as u32);
            return code;
        }
        self.gate_slow(id, weight, now).code()
    }

    fn gate_slow(&mut self, id: usize, weight: f64, now: f64) -> Decision {
        let limit = match self.limits.has.get(id) {
            Some(1) => Limit::Tag(Some(self.limits.value[id]).filter(|v| *v != f64::INFINITY)),
            _ => Limit::Global,
        };
        let policy = if self.has_policy { Some(&self.active) } else { None };
        let decision = decide(policy, &mut self.state, now, limit, weight);
        if let Some(calls) = self.calls.get_mut(id) {
            *calls = calls.wrapping_add(1);
            if !decision.allowed {
                self.bounced[id] = self.bounced[id].wrapping_add(1);
            }
        }
        decision
    }

    /// Calls per tag id since the last [`Engine::reset_counts`].
    pub fn calls(&self) -> &[u32; MAX_TAGS] {
        &self.calls
    }

    /// Denied calls per tag id since the last [`Engine::reset_counts`].
    pub fn bounced(&self) -> &[u32; MAX_TAGS] {
        &self.bounced
    }

    /// Zeroes the counters of tag ids `0..count` (after they were read).
    pub fn reset_counts(&mut self, count: usize) {
        let n = count.min(MAX_TAGS);
        self.calls[..n].fill(0);
        self.bounced[..n].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;

    const T: f64 = 1_740_000_000_000.0;
    const ALLOWED: u32 = ALLOWED_BIT;

    fn policy(global: Option<f64>, kill: bool, status: Status, lease: f64) -> Policy {
        Policy {
            global_max_weight: global,
            kill_signal: kill,
            status,
            lease_duration_seconds: lease,
        }
    }

    fn engine() -> Box<Engine> {
        Box::new(Engine::new())
    }

    #[test]
    fn arguments_are_validated() {
        let mut e = engine();
        assert_eq!(e.configure(Strategy::FixedRps, f64::NAN), Err(Error::Argument));
        assert_eq!(e.configure(Strategy::FixedRps, -1.0), Err(Error::Argument));
        assert_eq!(e.policy_tag(0, Some(1.0)), Err(Error::State)); // not staging
        assert_eq!(e.policy_commit(T), Err(Error::State));
        assert_eq!(e.mark_synced(T), Err(Error::State)); // no policy yet
        assert_eq!(
            e.policy_begin(policy(Some(f64::NAN), false, Status::Ok, 60.0)),
            Err(Error::Argument)
        );
        assert_eq!(e.policy_begin(policy(Some(-1.0), false, Status::Ok, 60.0)), Err(Error::Argument));
        assert_eq!(e.policy_begin(policy(None, false, Status::Ok, 0.0)), Err(Error::Argument));
        assert_eq!(e.policy_begin(policy(None, false, Status::Ok, f64::INFINITY)), Err(Error::Argument));
        assert_eq!(e.policy_begin(policy(Some(1.0), false, Status::Ok, 60.0)), Ok(()));
        assert_eq!(e.policy_tag(MAX_TAGS as u32, Some(1.0)), Err(Error::TooLong));
        assert_eq!(e.policy_tag(u32::MAX, Some(1.0)), Err(Error::TooLong));
        assert_eq!(e.policy_tag(1, Some(f64::NAN)), Err(Error::Argument));
        assert_eq!(e.policy_commit(f64::NAN), Err(Error::State));
        for id in [0, 1, MAX_TAGS as u32 - 1, MAX_TAGS as u32, u32::MAX] {
            for w in [f64::NAN, f64::INFINITY, -0.0, 1e308] {
                assert!(e.gate(id, w, f64::NAN) < 32);
            }
        }
        e.reset_counts(usize::MAX);
    }

    #[test]
    fn staged_policy_is_invisible_until_commit_and_ids_survive_reloads() {
        let mut e = engine();
        e.policy_begin(policy(None, false, Status::Ok, 60.0)).unwrap();
        e.policy_tag(3, Some(0.0)).unwrap();
        e.policy_commit(T).unwrap();
        assert_eq!(e.gate(3, 1.0, T), Reason::TagBlocked as u32);
        assert_eq!(e.gate(4, 1.0, T), ALLOWED);
        // A second policy staged but abandoned changes nothing.
        e.policy_begin(policy(Some(0.0), true, Status::Ok, 60.0)).unwrap();
        assert_eq!(e.gate(3, 1.0, T), Reason::TagBlocked as u32);
        assert_eq!(e.gate(4, 1.0, T), ALLOWED);
        // Reload: tag 3's entry is gone, tag 4 now blocked, global limit 2, tag 5 exempt.
        e.policy_begin(policy(Some(2.0), false, Status::OverLimit, 60.0)).unwrap();
        e.policy_tag(4, Some(0.0)).unwrap();
        e.policy_tag(5, None).unwrap();
        e.policy_commit(T).unwrap();
        assert_eq!(e.gate(3, 2.0, T), ALLOWED);
        assert_eq!(e.gate(3, 3.0, T), Reason::OverWeight as u32);
        assert_eq!(e.gate(4, 0.0, T), Reason::TagBlocked as u32);
        assert_eq!(e.gate(5, 1e300, T), ALLOWED);
        assert_eq!(e.gate(MAX_TAGS as u32 + 7, 3.0, T), Reason::OverWeight as u32);
        // beyond the table: global limit
    }

    #[test]
    fn fast_path_agrees_with_the_slow_path_at_lease_end() {
        let mut e = engine();
        e.configure(Strategy::LastPolicy, 50.0).unwrap();
        e.policy_begin(policy(Some(0.0), false, Status::Ok, 1.0)).unwrap();
        e.policy_commit(T).unwrap();
        assert_eq!(e.gate(0, 1.0, T + 1000.0), Reason::GlobalBlock as u32); // still in lease
        assert_eq!(e.gate(0, 1.0, T + 1000.5), Reason::LeaseExpired as u32); // denied
        e.mark_synced(T + 2000.0).unwrap();
        assert_eq!(e.gate(0, 1.0, T + 2500.0), Reason::GlobalBlock as u32);
        e.reset();
        assert_eq!(e.gate(0, 1.0, T), ALLOWED); // bootstrap again
    }

    #[test]
    fn kill_switch_outranks_cap_exceeded_on_every_path() {
        let mut e = engine();
        e.policy_begin(policy(None, true, Status::CapExceeded, 60.0)).unwrap();
        e.policy_tag(0, None).unwrap();
        e.policy_commit(T).unwrap();
        assert_eq!(e.gate(0, 0.0, T), Reason::KillSignal as u32);
        assert_eq!(e.gate(1, 1.0, T), Reason::KillSignal as u32);
        e.policy_begin(policy(Some(0.0), false, Status::CapExceeded, 60.0)).unwrap();
        e.policy_commit(T).unwrap();
        assert_eq!(e.gate(1, 1.0, T), Reason::CapExceeded as u32 | ALLOWED);
        e.policy_begin(policy(None, true, Status::Suspended, 60.0)).unwrap();
        e.policy_commit(T).unwrap();
        assert_eq!(e.gate(1, 1.0, T), Reason::Suspended as u32 | ALLOWED);
    }

    #[test]
    fn counts_calls_and_bounces_per_tag() {
        let mut e = engine();
        e.policy_begin(policy(None, false, Status::Ok, 60.0)).unwrap();
        e.policy_tag(1, Some(0.0)).unwrap();
        e.policy_commit(T).unwrap();
        e.gate(0, 1.0, T);
        e.gate(1, 1.0, T);
        e.gate(1, 1.0, T + 120_000.0); // lease expired, open: allowed, counted
        e.gate(MAX_TAGS as u32, 1.0, T); // not counted
        let (calls, bounced) = (e.calls(), e.bounced());
        assert_eq!((calls[0], bounced[0], calls[1], bounced[1]), (1, 0, 2, 1));
        assert_eq!(calls.iter().map(|c| *c as u64).sum::<u64>(), 3);
        e.reset_counts(2);
        assert_eq!(&e.calls()[..2], &[0, 0]);
    }
}
