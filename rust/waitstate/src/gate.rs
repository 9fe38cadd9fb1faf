//! The gate: the decision of `waitstate-core` on the policy in force, read with
//! one atomic load, and per-tag counters the pulses take.
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use waitstate_core::gate::{decide, GateState, Limit};
pub use waitstate_core::gate::{Reason, Strategy as SafeModeStrategy};

use crate::lifecycle::policy_pacing;
use crate::policy::{FxMap, Policy};

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
    /// Every tag with a limit in this policy or a counter slot: a gate call's
    /// one lookup. Rebuilt (under `GateInner::slots`) when a policy is
    /// installed or a tag is first counted, never changed in place.
    index: FxMap<Box<str>, Entry>,
}

/// What a gate call needs to know about its tag.
#[derive(Clone, Copy, Debug)]
struct Entry {
    limit: Limit,
    /// Its counter in `GateInner::counters`; [`NO_SLOT`] until its first call.
    slot: usize,
}

const NO_SLOT: usize = usize::MAX;

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
    /// The tag each counter slot counts, in slot order. Its lock also
    /// serialises every store of `installed`, so a new tag's slot and a new
    /// policy never overwrite each other.
    slots: Mutex<Vec<Box<str>>>,
    /// Calls and denied calls per slot: [`MAX_TAGS`] tags and the overflow.
    counters: Box<[AtomicU64]>,
    /// Set once [`MAX_TAGS`] tags have slots: new tags go to the overflow slot.
    full: AtomicBool,
    /// The overflow tag's slot, once it has one ([`NO_SLOT`] before).
    overflow_slot: AtomicUsize,
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
                    index: FxMap::default(),
                }),
                strategy,
                safe_mode_max_rps: state.safe_mode_max_rps,
                bucket: Mutex::new(state),
                slots: Mutex::new(Vec::new()),
                counters: (0..=MAX_TAGS).map(|_| AtomicU64::new(0)).collect(),
                full: AtomicBool::new(false),
                overflow_slot: AtomicUsize::new(NO_SLOT),
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
        // The path every call takes: one load, one lookup, one atomic add.
        let installed = self.inner.installed.load();
        let entry = installed.index.get(tag).copied();
        let limit = entry.map_or(Limit::Global, |e| e.limit);
        let result = self.decide_in(&installed, limit, weight, now);
        let add = ONE_CALL + if result.allowed { 0 } else { ONE_BOUNCE };
        match entry {
            Some(e) if e.slot != NO_SLOT => {
                self.inner.counters[e.slot].fetch_add(add, Ordering::Relaxed);
            }
            _ => {
                drop(installed);
                self.count_new(tag, add);
            }
        }
        result
    }

    /// The decision without counting it.
    pub fn decide(&self, tag: &str, weight: f64, now: f64) -> GateResult {
        let installed = self.inner.installed.load();
        let limit = installed.index.get(normalize_tag(tag)).map_or(Limit::Global, |e| e.limit);
        self.decide_in(&installed, limit, weight, now)
    }

    fn decide_in(&self, installed: &Installed, limit: Limit, weight: f64, now: f64) -> GateResult {
        if installed.policy.is_none() {
            return allowed();
        }
        let synced_at = match installed.synced_at {
            Some(at) => at,
            None => return allowed(),
        };
        let core = &installed.core;
        let expired = now > synced_at + core.lease_duration_seconds * 1000.0;
        let d = if expired && self.inner.strategy == SafeModeStrategy::FixedRps {
            // The bucket is shared state: a lock, taken only in safe mode.
            let mut state = lock(&self.inner.bucket);
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

    /// Counts a call of a tag without a slot yet: gives it one (and an entry in
    /// the index, so its next call takes the fast path), or counts it in the
    /// overflow once [`MAX_TAGS`] tags have slots. Allocates once per tag.
    #[cold]
    fn count_new(&self, tag: &str, add: u64) {
        let own = !self.inner.full.load(Ordering::Relaxed) && tag.chars().count() <= MAX_TAG_NAME_LENGTH;
        if !own {
            let slot = self.inner.overflow_slot.load(Ordering::Acquire);
            if slot != NO_SLOT {
                self.inner.counters[slot].fetch_add(add, Ordering::Relaxed);
                return;
            }
        }
        let mut slots = lock(&self.inner.slots);
        let key = if own && slots.len() < MAX_TAGS { tag } else { OVERFLOW_TAG };
        let slot = match slots.iter().position(|name| &**name == key) {
            Some(i) => i,
            None => {
                slots.push(key.into());
                slots.len() - 1
            }
        };
        self.inner.counters[slot].fetch_add(add, Ordering::Relaxed);
        if slots.len() >= MAX_TAGS {
            self.inner.full.store(true, Ordering::Relaxed);
        }
        if key == OVERFLOW_TAG {
            self.inner.overflow_slot.store(slot, Ordering::Release);
        }
        let current = self.inner.installed.load_full();
        let mut index = current.index.clone();
        let limit = current.limit_of(key);
        index.insert(key.into(), Entry { limit, slot });
        self.inner.installed.store(Arc::new(Installed {
            policy: current.policy.clone(),
            core: current.core,
            synced_at: current.synced_at,
            index,
        }));
    }

    /// Stores a new policy state with its index: the policy's tags and every tag with a slot.
    fn store(&self, policy: Option<Arc<Policy>>, core: waitstate_core::gate::Policy, synced_at: Option<f64>) {
        let slots = lock(&self.inner.slots);
        let index = index_for(&slots, policy.as_deref());
        self.reset_bucket();
        self.inner.installed.store(Arc::new(Installed {
            policy,
            core,
            synced_at,
            index,
        }));
    }

    /// Installs a policy, synced now: the lease restarts and safe mode, if on, ends.
    pub fn set_policy(&self, policy: Policy) {
        self.set_policy_at(policy, now_ms());
    }

    /// Installs a policy synced at `now` (epoch ms).
    pub fn set_policy_at(&self, policy: Policy, now: f64) {
        let mut core = policy.wire.gate_policy();
        core.lease_duration_seconds = policy_pacing(&policy.wire).lease_seconds;
        self.store(Some(Arc::new(policy)), core, Some(now));
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
        self.store(policy.map(Arc::new), core, synced_at);
    }

    /// A pushed policy (feature `runtime`): installed only when its version is
    /// newer than the one in force, and without touching the lease: the last
    /// sync's time and lease length stay, because a push proves nothing about
    /// whether pulses get through. Returns whether it was installed.
    #[cfg(feature = "runtime")]
    pub(crate) fn install_pushed(&self, policy: Policy) -> bool {
        // Every store of `installed` happens under the slots lock, so a pulse
        // answer cannot slip in between the version check and the store.
        let slots = lock(&self.inner.slots);
        let current = self.inner.installed.load_full();
        let mut core = policy.wire.gate_policy();
        match &current.policy {
            Some(p) if policy.version() <= p.version() => return false,
            Some(_) => core.lease_duration_seconds = current.core.lease_duration_seconds,
            None => core.lease_duration_seconds = policy_pacing(&policy.wire).lease_seconds,
        }
        let index = index_for(&slots, Some(&policy));
        self.inner.installed.store(Arc::new(Installed {
            policy: Some(Arc::new(policy)),
            core,
            synced_at: current.synced_at,
            index,
        }));
        drop(slots);
        true
    }

    /// A sync that confirmed the policy in force (a 304): the lease restarts at `now`.
    /// Does nothing before the first policy.
    pub fn confirm_at(&self, now: f64) {
        let slots = lock(&self.inner.slots);
        let current = self.inner.installed.load_full();
        if current.policy.is_none() {
            return;
        }
        self.reset_bucket();
        self.inner.installed.store(Arc::new(Installed {
            policy: current.policy.clone(),
            core: current.core,
            synced_at: Some(now),
            index: current.index.clone(),
        }));
        drop(slots);
    }

    fn reset_bucket(&self) {
        lock(&self.inner.bucket).bucket_updated_at = None;
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
        let slots = lock(&self.inner.slots);
        for (name, counter) in slots.iter().zip(self.inner.counters.iter()) {
            let word = counter.swap(0, Ordering::Relaxed);
            if word == 0 {
                continue;
            }
            let (calls, denied) = (word & 0xffff_ffff, word >> 32);
            out.usage_delta += calls;
            out.bounced_units += denied;
            out.tags.push((name.to_string(), calls, denied));
        }
        out
    }
}

impl Installed {
    fn limit_of(&self, tag: &str) -> Limit {
        match self.policy.as_ref().and_then(|p| p.tags.get(tag)) {
            Some(v) => Limit::Tag(*v),
            None => Limit::Global,
        }
    }
}

/// A poisoned lock still holds consistent data here (counters and a bucket).
/// A gate call's one lookup for `policy`: its tags with their limits, and every
/// tag that has a counter slot.
fn index_for(slots: &[Box<str>], policy: Option<&Policy>) -> FxMap<Box<str>, Entry> {
    let mut index = FxMap::default();
    if let Some(p) = policy {
        for (tag, limit) in p.tags.iter() {
            let slot = slots.iter().position(|name| name == tag).unwrap_or(NO_SLOT);
            index.insert(
                tag.clone(),
                Entry {
                    limit: Limit::Tag(*limit),
                    slot,
                },
            );
        }
    }
    for (slot, name) in slots.iter().enumerate() {
        index.entry(name.clone()).or_insert(Entry {
            limit: Limit::Global,
            slot,
        });
    }
    index
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

const fn allowed() -> GateResult {
    GateResult {
        allowed: true,
        reason: Reason::Allowed,
    }
}
