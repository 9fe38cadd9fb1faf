//! The C ABI of the wasm module, used by `@waitstate/edge` without wasm-bindgen.
//! Every function validates its arguments and returns an error code instead of
//! trapping; nothing here indexes out of bounds. See wasm-core/README.md.
//!
//! One module instance holds one gate: a policy (double-buffered so a partial
//! load never becomes active), the gate state with its safe-mode bucket, per-tag
//! counters, and an I/O buffer for HMAC input. Tags are small integer ids that
//! the JavaScript side assigns and caches; the core never sees tag strings.
use crate::gate::{decide, GateState, Limit, Policy, Reason, Status, Strategy};
use crate::sign::{begin, to_hex, HmacSha256};
use hmac::Mac;

/// Tag ids are `0..MAX_TAGS`; a larger id gates by the global limit and is not counted.
pub const MAX_TAGS: usize = 4096;
pub const IO_CAPACITY: usize = 8192;
/// Set in a `ws_gate` result when the call was allowed.
const ALLOWED_BIT: u32 = 16;

pub const OK: i32 = 0;
pub const ERR_ARGUMENT: i32 = -1;
pub const ERR_STATE: i32 = -2;
pub const ERR_TOO_LONG: i32 = -3;

struct Limits {
    value: [f64; MAX_TAGS],
    /// 1 when the tag has an entry in the policy (zero-initialised: no data segment).
    has: [u8; MAX_TAGS],
    /// One past the highest id with an entry, so commits copy only what is used.
    used: usize,
}

struct Core {
    active: Policy,
    has_policy: bool,
    /// Until when (epoch ms, inclusive) the fast path of `ws_gate` is exact: the
    /// lease holds and the policy is ordinary (status ok/over_limit, no kill).
    /// -Infinity when it never is. Recomputed on every sync.
    fast_until: f64,
    limits: Limits,
    staged: Policy,
    staging: bool,
    staged_limits: Limits,
    state: GateState,
    calls: [u32; MAX_TAGS],
    bounced: [u32; MAX_TAGS],
    io: [u8; IO_CAPACITY],
    mac: Option<HmacSha256>,
}

const EMPTY_LIMITS: Limits = Limits { value: [0.0; MAX_TAGS], has: [0; MAX_TAGS], used: 0 };
const DEFAULT_POLICY: Policy = Policy {
    global_max_weight: None,
    kill_signal: false,
    status: Status::Ok,
    lease_duration_seconds: 60.0,
};

static mut CORE: Core = Core {
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
    io: [0; IO_CAPACITY],
    mac: None,
};

impl Core {
    fn refresh_fast_path(&mut self) {
        let p = &self.active;
        let ordinary = matches!(p.status, Status::Ok | Status::OverLimit) && !p.kill_signal;
        self.fast_until = match (self.has_policy && ordinary, self.state.last_sync_at) {
            (true, Some(at)) => at + p.lease_duration_seconds * 1000.0,
            _ => f64::NEG_INFINITY,
        };
    }
}

fn core() -> &'static mut Core {
    // Safety: wasm32-unknown-unknown is single-threaded and no ABI function
    // re-enters another, so there is never more than one live reference.
    unsafe { &mut *core::ptr::addr_of_mut!(CORE) }
}

fn is_limit(v: f64) -> bool {
    v >= 0.0 // excludes NaN; +Infinity stands for unlimited (null)
}

/// Safe-mode configuration: strategy 0 open, 1 fixed_rps, 2 last_policy.
#[no_mangle]
pub extern "C" fn ws_configure(strategy: u32, safe_mode_max_rps: f64) -> i32 {
    let strategy = match Strategy::from_code(strategy) {
        Some(s) => s,
        None => return ERR_ARGUMENT,
    };
    if !(safe_mode_max_rps >= 0.0 && safe_mode_max_rps.is_finite()) {
        return ERR_ARGUMENT;
    }
    let state = &mut core().state;
    state.strategy = strategy;
    state.safe_mode_max_rps = safe_mode_max_rps;
    state.bucket_updated_at = None;
    OK
}

/// Starts staging a policy. `global_max_weight` is `Infinity` for unlimited;
/// status 0 ok, 1 over_limit, 2 cap_exceeded, 3 suspended.
#[no_mangle]
pub extern "C" fn ws_policy_begin(global_max_weight: f64, kill_signal: u32, status: u32, lease_duration_seconds: f64) -> i32 {
    let status = match Status::from_code(status) {
        Some(s) => s,
        None => return ERR_ARGUMENT,
    };
    if !is_limit(global_max_weight) || kill_signal > 1 || !(lease_duration_seconds > 0.0 && lease_duration_seconds.is_finite()) {
        return ERR_ARGUMENT;
    }
    let c = core();
    c.staged = Policy {
        global_max_weight: if global_max_weight == f64::INFINITY { None } else { Some(global_max_weight) },
        kill_signal: kill_signal == 1,
        status,
        lease_duration_seconds,
    };
    let used = c.staged_limits.used;
    c.staged_limits.has[..used].fill(0);
    c.staged_limits.used = 0;
    c.staging = true;
    OK
}

/// Stages a tag entry: `limit` is `Infinity` for a `null` (exempt) entry.
#[no_mangle]
pub extern "C" fn ws_policy_tag(tag_id: u32, limit: f64) -> i32 {
    let c = core();
    if !c.staging {
        return ERR_STATE;
    }
    let id = tag_id as usize;
    if id >= MAX_TAGS {
        return ERR_TOO_LONG;
    }
    if !is_limit(limit) {
        return ERR_ARGUMENT;
    }
    c.staged_limits.value[id] = limit;
    c.staged_limits.has[id] = 1;
    if id + 1 > c.staged_limits.used {
        c.staged_limits.used = id + 1;
    }
    OK
}

/// Makes the staged policy active, as synced at `synced_at` (epoch ms).
#[no_mangle]
pub extern "C" fn ws_policy_commit(synced_at: f64) -> i32 {
    let c = core();
    if !c.staging || !synced_at.is_finite() {
        return ERR_STATE;
    }
    let clear = c.limits.used;
    c.limits.has[..clear].fill(0);
    let used = c.staged_limits.used;
    c.limits.value[..used].copy_from_slice(&c.staged_limits.value[..used]);
    c.limits.has[..used].copy_from_slice(&c.staged_limits.has[..used]);
    c.limits.used = used;
    c.active = c.staged;
    c.has_policy = true;
    c.staging = false;
    c.state.mark_synced(synced_at);
    c.refresh_fast_path();
    OK
}

/// A sync that confirmed the current policy (for example a 304): the lease restarts.
#[no_mangle]
pub extern "C" fn ws_mark_synced(synced_at: f64) -> i32 {
    let c = core();
    if !c.has_policy || !synced_at.is_finite() {
        return ERR_STATE;
    }
    c.state.mark_synced(synced_at);
    c.refresh_fast_path();
    OK
}

/// Forgets the policy: back to bootstrap (everything allowed, no lease).
#[no_mangle]
pub extern "C" fn ws_reset() {
    let c = core();
    c.has_policy = false;
    c.state.last_sync_at = None;
    c.state.bucket_updated_at = None;
    c.fast_until = f64::NEG_INFINITY;
}

/// The gate: `reason | allowed << 4` (reasons: 0 allowed, 1 lease_expired,
/// 2 cap_exceeded, 3 suspended, 4 kill_signal, 5 tag_blocked, 6 global_block, 7 over_weight).
#[no_mangle]
pub extern "C" fn ws_gate(tag_id: u32, weight: f64, now: f64) -> u32 {
    let c = core();
    let id = tag_id as usize;
    if id < MAX_TAGS && now <= c.fast_until {
        // Lease holding, ordinary policy: steps 1-4 cannot apply (see `fast_until`).
        let has_entry = c.limits.has[id] == 1;
        let limit = if has_entry { c.limits.value[id] } else { c.active.global_max_weight.unwrap_or(f64::INFINITY) };
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
        c.calls[id] = c.calls[id].wrapping_add(1);
        c.bounced[id] = c.bounced[id].wrapping_add((code & ALLOWED_BIT == 0) as u32);
        return code;
    }
    let limit = match c.limits.has.get(id) {
        Some(1) => Limit::Tag(Some(c.limits.value[id]).filter(|v| *v != f64::INFINITY)),
        _ => Limit::Global,
    };
    let policy = if c.has_policy { Some(&c.active) } else { None };
    let decision = decide(policy, &mut c.state, now, limit, weight);
    if let Some(calls) = c.calls.get_mut(id) {
        *calls = calls.wrapping_add(1);
        if !decision.allowed {
            c.bounced[id] = c.bounced[id].wrapping_add(1);
        }
    }
    decision.code()
}

#[no_mangle]
pub extern "C" fn ws_max_tags() -> u32 {
    MAX_TAGS as u32
}

/// Per-tag call counters (`u32[MAX_TAGS]`), read by JavaScript for pulses.
#[no_mangle]
pub extern "C" fn ws_calls_ptr() -> *const u32 {
    core().calls.as_ptr()
}

#[no_mangle]
pub extern "C" fn ws_bounced_ptr() -> *const u32 {
    core().bounced.as_ptr()
}

/// Zeroes the counters of tags `0..count` after JavaScript has read them.
#[no_mangle]
pub extern "C" fn ws_reset_counts(count: u32) {
    let c = core();
    let n = (count as usize).min(MAX_TAGS);
    c.calls[..n].fill(0);
    c.bounced[..n].fill(0);
}

#[no_mangle]
pub extern "C" fn ws_io_ptr() -> *mut u8 {
    core().io.as_mut_ptr()
}

#[no_mangle]
pub extern "C" fn ws_io_capacity() -> u32 {
    IO_CAPACITY as u32
}

/// Starts an HMAC-SHA256 keyed with the first `key_len` bytes of the I/O buffer.
#[no_mangle]
pub extern "C" fn ws_hmac_begin(key_len: u32) -> i32 {
    let c = core();
    let len = key_len as usize;
    if len > IO_CAPACITY {
        return ERR_TOO_LONG;
    }
    c.mac = Some(begin(&c.io[..len]));
    OK
}

/// Feeds the first `len` bytes of the I/O buffer.
#[no_mangle]
pub extern "C" fn ws_hmac_update(len: u32) -> i32 {
    let c = core();
    let len = len as usize;
    if len > IO_CAPACITY {
        return ERR_TOO_LONG;
    }
    match c.mac.as_mut() {
        Some(mac) => {
            mac.update(&c.io[..len]);
            OK
        }
        None => ERR_STATE,
    }
}

/// Finishes the MAC and writes 64 lowercase hex characters to the I/O buffer.
#[no_mangle]
pub extern "C" fn ws_hmac_finish() -> i32 {
    let c = core();
    let mac = match c.mac.take() {
        Some(mac) => mac,
        None => return ERR_STATE,
    };
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&mac.finalize().into_bytes());
    let mut hex = [0u8; 64];
    to_hex(&digest, &mut hex);
    c.io[..64].copy_from_slice(&hex);
    OK
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The ABI state is one global: tests that touch it run one at a time.
    static LOCK: Mutex<()> = Mutex::new(());
    const T: f64 = 1_740_000_000_000.0;
    const ALLOWED: u32 = 16;

    fn fresh() -> std::sync::MutexGuard<'static, ()> {
        let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        ws_reset();
        assert_eq!(ws_configure(0, 50.0), OK);
        guard
    }

    #[test]
    fn arguments_are_validated_not_trapped_on() {
        let _g = fresh();
        assert_eq!(ws_configure(3, 50.0), ERR_ARGUMENT);
        assert_eq!(ws_configure(1, f64::NAN), ERR_ARGUMENT);
        assert_eq!(ws_configure(1, -1.0), ERR_ARGUMENT);
        assert_eq!(ws_policy_tag(0, 1.0), ERR_STATE); // not staging
        assert_eq!(ws_policy_commit(T), ERR_STATE);
        assert_eq!(ws_mark_synced(T), ERR_STATE); // no policy yet
        assert_eq!(ws_policy_begin(f64::NAN, 0, 0, 60.0), ERR_ARGUMENT);
        assert_eq!(ws_policy_begin(-1.0, 0, 0, 60.0), ERR_ARGUMENT);
        assert_eq!(ws_policy_begin(1.0, 2, 0, 60.0), ERR_ARGUMENT);
        assert_eq!(ws_policy_begin(1.0, 0, 4, 60.0), ERR_ARGUMENT);
        assert_eq!(ws_policy_begin(1.0, 0, 0, 0.0), ERR_ARGUMENT);
        assert_eq!(ws_policy_begin(1.0, 0, 0, f64::INFINITY), ERR_ARGUMENT);
        assert_eq!(ws_policy_begin(1.0, 0, 0, 60.0), OK);
        assert_eq!(ws_policy_tag(MAX_TAGS as u32, 1.0), ERR_TOO_LONG);
        assert_eq!(ws_policy_tag(u32::MAX, 1.0), ERR_TOO_LONG);
        assert_eq!(ws_policy_tag(1, f64::NAN), ERR_ARGUMENT);
        assert_eq!(ws_policy_commit(f64::NAN), ERR_STATE);
        assert_eq!(ws_hmac_begin(IO_CAPACITY as u32 + 1), ERR_TOO_LONG);
        assert_eq!(ws_hmac_update(0), ERR_STATE);
        assert_eq!(ws_hmac_finish(), ERR_STATE);
        // Any tag id, any float: an answer, never a trap.
        for id in [0, 1, MAX_TAGS as u32 - 1, MAX_TAGS as u32, u32::MAX] {
            for w in [f64::NAN, f64::INFINITY, -0.0, 1e308] {
                assert!(ws_gate(id, w, f64::NAN) < 32);
            }
        }
        ws_reset_counts(u32::MAX);
    }

    #[test]
    fn staged_policy_is_invisible_until_commit_and_ids_survive_reloads() {
        let _g = fresh();
        assert_eq!(ws_policy_begin(f64::INFINITY, 0, 0, 60.0), OK);
        assert_eq!(ws_policy_tag(3, 0.0), OK);
        assert_eq!(ws_policy_commit(T), OK);
        assert_eq!(ws_gate(3, 1.0, T), 5); // tag_blocked
        assert_eq!(ws_gate(4, 1.0, T), ALLOWED);
        // A second policy staged but abandoned changes nothing.
        assert_eq!(ws_policy_begin(0.0, 1, 0, 60.0), OK);
        assert_eq!(ws_gate(3, 1.0, T), 5);
        assert_eq!(ws_gate(4, 1.0, T), ALLOWED);
        // Reload: tag 3's entry is gone, tag 4 now blocked, global limit 2, tag 5 exempt.
        assert_eq!(ws_policy_begin(2.0, 0, 1, 60.0), OK);
        assert_eq!(ws_policy_tag(4, 0.0), OK);
        assert_eq!(ws_policy_tag(5, f64::INFINITY), OK);
        assert_eq!(ws_policy_commit(T), OK);
        assert_eq!(ws_gate(3, 2.0, T), ALLOWED);
        assert_eq!(ws_gate(3, 3.0, T), 7); // over_weight
        assert_eq!(ws_gate(4, 0.0, T), 5);
        assert_eq!(ws_gate(5, 1e300, T), ALLOWED);
        assert_eq!(ws_gate(MAX_TAGS as u32 + 7, 3.0, T), 7); // beyond the table: global limit
    }

    #[test]
    fn fast_path_agrees_with_the_slow_path_at_lease_end() {
        let _g = fresh();
        assert_eq!(ws_configure(2, 50.0), OK); // last_policy
        assert_eq!(ws_policy_begin(0.0, 0, 0, 1.0), OK);
        assert_eq!(ws_policy_commit(T), OK);
        assert_eq!(ws_gate(0, 1.0, T + 1000.0), 6); // global_block, still in lease
        assert_eq!(ws_gate(0, 1.0, T + 1000.5), 1); // lease_expired, denied
        assert_eq!(ws_mark_synced(T + 2000.0), OK);
        assert_eq!(ws_gate(0, 1.0, T + 2500.0), 6);
        ws_reset();
        assert_eq!(ws_gate(0, 1.0, T), ALLOWED); // bootstrap again
    }

    #[test]
    fn counts_calls_and_bounces_per_tag() {
        let _g = fresh();
        ws_reset_counts(MAX_TAGS as u32);
        assert_eq!(ws_policy_begin(f64::INFINITY, 0, 0, 60.0), OK);
        assert_eq!(ws_policy_tag(1, 0.0), OK);
        assert_eq!(ws_policy_commit(T), OK);
        ws_gate(0, 1.0, T);
        ws_gate(1, 1.0, T);
        ws_gate(1, 1.0, T + 120_000.0); // lease expired, open: allowed, counted
        ws_gate(MAX_TAGS as u32, 1.0, T); // not counted
        let (calls, bounced) = unsafe {
            (core::slice::from_raw_parts(ws_calls_ptr(), MAX_TAGS), core::slice::from_raw_parts(ws_bounced_ptr(), MAX_TAGS))
        };
        assert_eq!((calls[0], bounced[0], calls[1], bounced[1]), (1, 0, 2, 1));
        assert_eq!(calls.iter().map(|c| *c as u64).sum::<u64>(), 3);
        ws_reset_counts(2);
        let calls = unsafe { core::slice::from_raw_parts(ws_calls_ptr(), 2) };
        assert_eq!(calls, &[0, 0]);
    }

    #[test]
    fn streaming_hmac_matches_one_shot() {
        let _g = fresh();
        let io = unsafe { core::slice::from_raw_parts_mut(ws_io_ptr(), ws_io_capacity() as usize) };
        io[..3].copy_from_slice(b"key");
        assert_eq!(ws_hmac_begin(3), OK);
        for chunk in [&b"{\"a\":"[..], &b"1}"[..], &b".17"[..]] {
            io[..chunk.len()].copy_from_slice(chunk);
            assert_eq!(ws_hmac_update(chunk.len() as u32), OK);
        }
        assert_eq!(ws_hmac_finish(), OK);
        let mut digest = [0u8; 32];
        crate::sign::sign_pulse(b"{\"a\":1}", b"17", b"key", &mut digest);
        let mut hex = [0u8; 64];
        to_hex(&digest, &mut hex);
        assert_eq!(&io[..64], &hex[..]);
        assert_eq!(ws_hmac_finish(), ERR_STATE); // consumed
    }
}
