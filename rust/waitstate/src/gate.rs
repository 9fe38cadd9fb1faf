//! The gate: the decision of `waitstate-core` on the policy in force, read with
//! one atomic load, and per-tag counters the pulses take.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use dashmap::DashMap;
use waitstate_core::gate::{decide, GateState, Limit};
pub use waitstate_core::gate::{Reason, Strategy as SafeModeStrategy};

use crate::lifecycle::policy_pacing;
use crate::policy::Policy;

/// The tag of a call made without one.
pub const DEFAULT_TAG: &str = "__default__";
/// Where calls of tags past [`MAX_TAGS`] (or longer than 128 characters) are counted.
pub const OVERFLOW_TAG: &str = "__other__";
/// Distinct tags counted on their own, as in the other SDKs; the rest go to [`OVERFLOW_TAG`].
pub const MAX_TAGS: usize = 255;
const MAX_TAG_NAME_LENGTH: usize = 128;

/// The answer of one gate call.
///
/// ```
/// use waitstate::{Gate, Reason};
/// let r = Gate::default().gate("free", 1);
/// assert!(r.allowed);
/// assert_eq!(r.reason, Reason::Allowed);
/// assert_eq!(r.reason.as_str(), "allowed");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateResult {
    pub allowed: bool,
    /// Why; [`Reason::as_str`] is the wire name (`"tag_blocked"`, `"lease_expired"`, …).
    pub reason: Reason,
}

/// The policy in force and when it was last synced: swapped as one value, so a
/// gate call never sees a policy with another policy's lease.
#[derive(Debug)]
pub(crate) struct Installed {
    pub(crate) policy: Option<Arc<Policy>>,
    /// The fields `waitstate-core` decides on; its lease is the paced one (cap_exceeded, suspended extend it).
    core: waitstate_core::gate::Policy,
    pub(crate) synced_at: Option<f64>,
}

/// Calls and denied calls of one tag in one atomic word (calls in the low 32
/// bits, denied in the high 32), so a pulse takes both in one swap and never
/// reports more denied calls than calls.
const ONE_CALL: u64 = 1;
const ONE_BOUNCE: u64 = 1 << 32;

/// Per-tag counts taken by [`Gate::take_counts`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TakenCounts {
    pub usage_delta: u64,
    pub bounced_units: u64,
    /// `(tag, calls, denied)`, tags with calls only.
    pub tags: Vec<(String, u64, u64)>,
}

struct GateInner {
    installed: ArcSwap<Installed>,
    strategy: SafeModeStrategy,
    safe_mode_max_rps: f64,
    /// The `fixed_rps` token bucket: only touched once the lease has expired.
    bucket: Mutex<GateState>,
    counters: DashMap<Box<str>, AtomicU64, std::hash::BuildHasherDefault<rustc_hash::FxHasher>>,
}

/// The gate alone: a policy, the safe-mode strategy and the counters. Cheap to
/// clone (an `Arc`); every clone is the same gate.
///
/// ```
/// use waitstate::{Gate, Policy, SafeModeStrategy};
/// let gate = Gate::new(SafeModeStrategy::Open, 50.0);
/// gate.set_policy(Policy::from_json(r#"{"tagMaxWeights": {"free": 0}}"#).unwrap());
/// assert!(!gate.gate("free", 1).allowed);
/// assert_eq!(gate.gate("free", 1).reason.as_str(), "tag_blocked");
/// assert!(gate.gate("pro", 5).allowed);
/// let counts = gate.take_counts();
/// assert_eq!((counts.usage_delta, counts.bounced_units), (3, 2));
/// ```
#[derive(Clone)]
pub struct Gate {
    inner: Arc<GateInner>,
}

impl Default for Gate {
    /// Safe mode `open`, 50 rps for `fixed_rps`.
    fn default() -> Self {
        Gate::new(SafeModeStrategy::Open, 50.0)
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let installed = self.inner.installed.load();
        f.debug_struct("Gate")
            .field("strategy", &self.inner.strategy)
            .field("safe_mode_max_rps", &self.inner.safe_mode_max_rps)
            .field("policy", &installed.policy)
            .field("synced_at", &installed.synced_at)
            .finish()
    }
}

/// Epoch milliseconds now (0 if the clock is before 1970).
pub fn now_ms() -> f64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(_) => 0.0,
    }
}

fn normalize_tag(tag: &str) -> &str {
    if tag.is_empty() {
        DEFAULT_TAG
    } else {
        tag
    }
}

impl Gate {
    /// A gate that has never synced (every call allowed until the first policy).
    /// A `safe_mode_max_rps` that is not a finite number `>= 0` becomes 50.
    pub fn new(strategy: SafeModeStrategy, safe_mode_max_rps: f64) -> Gate {
        let state = GateState::new(strategy, safe_mode_max_rps);
        Gate {
            inner: Arc::new(GateInner {
                installed: ArcSwap::from_pointee(Installed {
                    policy: None,
                    core: waitstate_core::gate::Policy::default(),
                    synced_at: None,
                }),
                strategy,
                safe_mode_max_rps: state.safe_mode_max_rps,
                bucket: Mutex::new(state),
                counters: DashMap::default(),
            }),
        }
    }

    /// Decides a call of `weight` units for `tag` now, and counts it. Never
    /// panics, never allocates once the tag has been seen; an empty tag is
    /// `__default__`, a NaN weight 1, a negative weight 0.
    #[inline]
    pub fn gate(&self, tag: &str, weight: impl Into<f64>) -> GateResult {
        self.gate_at(tag, weight.into(), now_ms())
    }

    /// [`Gate::gate`] at a given time (epoch ms), for tests and replays.
    pub fn gate_at(&self, tag: &str, weight: f64, now: f64) -> GateResult {
        let tag = normalize_tag(tag);
        let result = self.decide(tag, weight, now);
        self.count(tag, !result.allowed);
        result
    }

    /// The decision without counting it.
    pub fn decide(&self, tag: &str, weight: f64, now: f64) -> GateResult {
        let installed = self.inner.installed.load();
        let policy = match &installed.policy {
            Some(p) => p,
            None => return allowed(),
        };
        let limit = match policy.tags.get(tag) {
            Some(v) => Limit::Tag(*v),
            None => Limit::Global,
        };
        let synced_at = match installed.synced_at {
            Some(at) => at,
            None => return allowed(),
        };
        let core = &installed.core;
        let expired = now > synced_at + core.lease_duration_seconds * 1000.0;
        let d = if expired && self.inner.strategy == SafeModeStrategy::FixedRps {
            // The bucket is shared state: a lock, taken only in safe mode.
            let mut state = match self.inner.bucket.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            state.last_sync_at = Some(synced_at);
            decide(Some(core), &mut state, now, limit, weight)
        } else {
            let mut state = GateState {
                last_sync_at: Some(synced_at),
                strategy: self.inner.strategy,
                safe_mode_max_rps: self.inner.safe_mode_max_rps,
                bucket_tokens: 0.0,
                bucket_updated_at: None,
            };
            decide(Some(core), &mut state, now, limit, weight)
        };
        GateResult {
            allowed: d.allowed,
            reason: d.reason,
        }
    }

    fn count(&self, tag: &str, denied: bool) {
        let add = ONE_CALL + if denied { ONE_BOUNCE } else { 0 };
        if let Some(c) = self.inner.counters.get(tag) {
            c.fetch_add(add, Ordering::Relaxed);
            return;
        }
        let key = if self.inner.counters.len() >= MAX_TAGS || tag.chars().count() > MAX_TAG_NAME_LENGTH {
            OVERFLOW_TAG
        } else {
            tag
        };
        if let Some(c) = self.inner.counters.get(key) {
            c.fetch_add(add, Ordering::Relaxed);
            return;
        }
        self.inner
            .counters
            .entry(key.into())
            .or_insert_with(|| AtomicU64::new(0))
            .fetch_add(add, Ordering::Relaxed);
    }

    /// Installs a policy, synced now: the lease restarts and safe mode, if on, ends.
    pub fn set_policy(&self, policy: Policy) {
        self.set_policy_at(policy, now_ms());
    }

    /// Installs a policy synced at `now` (epoch ms).
    pub fn set_policy_at(&self, policy: Policy, now: f64) {
        let mut core = policy.wire.gate_policy();
        core.lease_duration_seconds = policy_pacing(&policy.wire).lease_seconds;
        self.reset_bucket();
        self.inner.installed.store(Arc::new(Installed {
            policy: Some(Arc::new(policy)),
            core,
            synced_at: Some(now),
        }));
    }

    /// Installs `policy` (or none) as last synced at `synced_at` (`None`: never
    /// synced, so every call is allowed): the state the gate vectors start from.
    #[doc(hidden)]
    pub fn install_at(&self, policy: Option<Policy>, synced_at: Option<f64>) {
        let core = match &policy {
            // The lease as the policy states it: the gate vectors pin the gate, not the pacing.
            Some(p) => p.wire.gate_policy(),
            None => waitstate_core::gate::Policy::default(),
        };
        self.reset_bucket();
        self.inner.installed.store(Arc::new(Installed {
            policy: policy.map(Arc::new),
            core,
            synced_at,
        }));
    }

    /// A pushed policy (feature `runtime`): installed only when its version is
    /// newer than the one in force, and without touching the lease: the last
    /// sync's time and lease length stay, because a push proves nothing about
    /// whether pulses get through. Returns whether it was installed.
    #[cfg(feature = "runtime")]
    pub(crate) fn install_pushed(&self, policy: Policy) -> bool {
        let policy = Arc::new(policy);
        loop {
            let current = self.inner.installed.load_full();
            let mut core = policy.wire.gate_policy();
            match &current.policy {
                Some(p) if policy.version() <= p.version() => return false,
                Some(_) => core.lease_duration_seconds = current.core.lease_duration_seconds,
                None => core.lease_duration_seconds = policy_pacing(&policy.wire).lease_seconds,
            }
            let next = Arc::new(Installed {
                policy: Some(policy.clone()),
                core,
                synced_at: current.synced_at,
            });
            // Another install in between (a pulse answer): decide again against it.
            let previous = self.inner.installed.compare_and_swap(&current, next);
            if Arc::ptr_eq(&previous, &current) {
                return true;
            }
        }
    }

    /// A sync that confirmed the policy in force (a 304): the lease restarts at `now`.
    /// Does nothing before the first policy.
    pub fn confirm_at(&self, now: f64) {
        let current = self.inner.installed.load_full();
        if current.policy.is_none() {
            return;
        }
        self.reset_bucket();
        self.inner.installed.store(Arc::new(Installed {
            policy: current.policy.clone(),
            core: current.core,
            synced_at: Some(now),
        }));
    }

    fn reset_bucket(&self) {
        let mut state = match self.inner.bucket.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        state.bucket_updated_at = None;
    }

    /// The policy in force, if any.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.inner.installed.load().policy.clone()
    }

    /// When the policy was last synced (epoch ms), if ever.
    pub fn last_sync_at(&self) -> Option<f64> {
        self.inner.installed.load().synced_at
    }

    /// Whether the lease has run out at `now` (never before the first sync).
    pub fn lease_expired_at(&self, now: f64) -> bool {
        let installed = self.inner.installed.load();
        match (&installed.policy, installed.synced_at) {
            (Some(_), Some(at)) => now > at + installed.core.lease_duration_seconds * 1000.0,
            _ => false,
        }
    }

    pub fn safe_mode_strategy(&self) -> SafeModeStrategy {
        self.inner.strategy
    }

    /// The counts since the last take, reset: every call lands in exactly one take.
    pub fn take_counts(&self) -> TakenCounts {
        let mut out = TakenCounts::default();
        for entry in self.inner.counters.iter() {
            let word = entry.value().swap(0, Ordering::Relaxed);
            if word == 0 {
                continue;
            }
            let (calls, denied) = (word & 0xffff_ffff, word >> 32);
            out.usage_delta += calls;
            out.bounced_units += denied;
            out.tags.push((entry.key().to_string(), calls, denied));
        }
        out
    }
}

const fn allowed() -> GateResult {
    GateResult {
        allowed: true,
        reason: Reason::Allowed,
    }
}
