//! The C ABI of the wasm module, used by `@waitstate/edge` without wasm-bindgen.
//! This crate only converts: numbers in, [`waitstate_core`] calls, numbers out.
//! Every function validates its arguments and returns an error code instead of
//! trapping; nothing here indexes out of bounds. See rust/README.md.
//!
//! One module instance is one [`Instance`]: a gate engine (policy, state,
//! per-tag counters), an I/O buffer for HMAC input, a
//! streaming HMAC, and a few histogram slots. It is the only global.
#![cfg_attr(target_arch = "wasm32", no_std)]

use core::cell::UnsafeCell;
use waitstate_core::engine::{Engine, Error, MAX_TAGS};
use waitstate_core::gate::{Policy, Status, Strategy};
use waitstate_core::histogram::Histogram;
use waitstate_core::sign::Signer;

/// The version of this ABI. The JavaScript loader refuses a module whose
/// `ws_abi_version` differs from the one it was written for (or that has none:
/// version 1 predates the export). Bump it with any change of an export's
/// name, signature or meaning.
pub const ABI_VERSION: u32 = 2;
pub const IO_CAPACITY: usize = 8192;
/// Histogram slots per instance (`0..HISTOGRAMS`).
pub const HISTOGRAMS: usize = 8;

pub const OK: i32 = 0;
pub const ERR_ARGUMENT: i32 = -1;
pub const ERR_STATE: i32 = -2;
pub const ERR_TOO_LONG: i32 = -3;

struct IoBuffer([u8; IO_CAPACITY]);

struct Instance {
    engine: Engine,
    io: IoBuffer,
    mac: Option<Signer>,
    /// The last `ws_hist_encode` answer.
    head: [f64; 4],
    /// Built on first use: a histogram's bucket bounds are computed, not constant.
    histograms: Option<[Histogram; HISTOGRAMS]>,
}

struct Global(UnsafeCell<Instance>);

// Safety: wasm32-unknown-unknown is single-threaded. Natively (cargo test) the
// tests that touch the instance hold a lock.
unsafe impl Sync for Global {}

static INSTANCE: Global = Global(UnsafeCell::new(Instance {
    engine: Engine::new(),
    io: IoBuffer([0; IO_CAPACITY]),
    mac: None,
    head: [0.0; 4],
    histograms: None,
}));

fn instance() -> &'static mut Instance {
    // Safety: no ABI function re-enters another, so there is never more than one
    // live reference (see `Global`).
    unsafe { &mut *INSTANCE.0.get() }
}

fn code(result: Result<(), Error>) -> i32 {
    match result {
        Ok(()) => OK,
        Err(Error::Argument) => ERR_ARGUMENT,
        Err(Error::State) => ERR_STATE,
        Err(Error::TooLong) => ERR_TOO_LONG,
    }
}

/// `Infinity` on the boundary stands for `null` (unlimited, or an exempt tag).
fn limit(v: f64) -> Option<f64> {
    if v == f64::INFINITY {
        None
    } else {
        Some(v)
    }
}

#[no_mangle]
pub extern "C" fn ws_abi_version() -> u32 {
    ABI_VERSION
}

/// Safe-mode configuration: strategy 0 open, 1 fixed_rps, 2 last_policy.
#[no_mangle]
pub extern "C" fn ws_configure(strategy: u32, safe_mode_max_rps: f64) -> i32 {
    match Strategy::from_code(strategy) {
        Some(s) => code(instance().engine.configure(s, safe_mode_max_rps)),
        None => ERR_ARGUMENT,
    }
}

/// Starts staging a policy. `global_max_weight` is `Infinity` for unlimited;
/// status 0 ok, 1 over_limit, 2 cap_exceeded, 3 suspended.
#[no_mangle]
pub extern "C" fn ws_policy_begin(global_max_weight: f64, kill_signal: u32, status: u32, lease_duration_seconds: f64) -> i32 {
    let status = match Status::from_code(status) {
        Some(s) if kill_signal <= 1 => s,
        _ => return ERR_ARGUMENT,
    };
    code(instance().engine.policy_begin(Policy {
        global_max_weight: limit(global_max_weight),
        kill_signal: kill_signal == 1,
        status,
        lease_duration_seconds,
    }))
}

/// Stages a tag entry: `limit` is `Infinity` for a `null` (exempt) entry.
#[no_mangle]
pub extern "C" fn ws_policy_tag(tag_id: u32, tag_limit: f64) -> i32 {
    code(instance().engine.policy_tag(tag_id, limit(tag_limit)))
}

/// Makes the staged policy active, as synced at `synced_at` (epoch ms).
#[no_mangle]
pub extern "C" fn ws_policy_commit(synced_at: f64) -> i32 {
    code(instance().engine.policy_commit(synced_at))
}

/// A sync that confirmed the current policy (for example a 304): the lease restarts.
#[no_mangle]
pub extern "C" fn ws_mark_synced(synced_at: f64) -> i32 {
    code(instance().engine.mark_synced(synced_at))
}

/// Forgets the policy: back to bootstrap (everything allowed, no lease).
#[no_mangle]
pub extern "C" fn ws_reset() {
    instance().engine.reset();
}

/// The gate: `reason | allowed << 4` (reasons: 0 allowed, 1 lease_expired,
/// 2 cap_exceeded, 3 suspended, 4 kill_signal, 5 tag_blocked, 6 global_block, 7 over_weight).
#[no_mangle]
pub extern "C" fn ws_gate(tag_id: u32, weight: f64, now: f64) -> u32 {
    instance().engine.gate(tag_id, weight, now)
}

#[no_mangle]
pub extern "C" fn ws_max_tags() -> u32 {
    MAX_TAGS as u32
}

/// Per-tag call counters (`u32[MAX_TAGS]`), read by JavaScript for pulses.
#[no_mangle]
pub extern "C" fn ws_calls_ptr() -> *const u32 {
    instance().engine.calls().as_ptr()
}

#[no_mangle]
pub extern "C" fn ws_bounced_ptr() -> *const u32 {
    instance().engine.bounced().as_ptr()
}

/// Zeroes the counters of tags `0..count` after JavaScript has read them.
#[no_mangle]
pub extern "C" fn ws_reset_counts(count: u32) {
    instance().engine.reset_counts(count as usize);
}

#[no_mangle]
pub extern "C" fn ws_io_ptr() -> *mut u8 {
    instance().io.0.as_mut_ptr()
}

#[no_mangle]
pub extern "C" fn ws_io_capacity() -> u32 {
    IO_CAPACITY as u32
}

/// Starts an HMAC-SHA256 keyed with the first `key_len` bytes of the I/O buffer.
#[no_mangle]
pub extern "C" fn ws_hmac_begin(key_len: u32) -> i32 {
    let i = instance();
    match i.io.0.get(..key_len as usize) {
        Some(key) => {
            i.mac = Some(Signer::new(key));
            OK
        }
        None => ERR_TOO_LONG,
    }
}

/// Feeds the first `len` bytes of the I/O buffer.
#[no_mangle]
pub extern "C" fn ws_hmac_update(len: u32) -> i32 {
    let i = instance();
    match (i.mac.as_mut(), i.io.0.get(..len as usize)) {
        (_, None) => ERR_TOO_LONG,
        (None, _) => ERR_STATE,
        (Some(mac), Some(data)) => {
            mac.update(data);
            OK
        }
    }
}

/// Finishes the MAC and writes 64 lowercase hex characters to the I/O buffer.
#[no_mangle]
pub extern "C" fn ws_hmac_finish() -> i32 {
    let i = instance();
    match i.mac.take() {
        Some(mac) => {
            let mut hex = [0u8; 64];
            mac.finish_hex(&mut hex);
            i.io.0[..64].copy_from_slice(&hex);
            OK
        }
        None => ERR_STATE,
    }
}

fn histogram(slot: u32) -> Option<&'static mut Histogram> {
    let all = instance()
        .histograms
        .get_or_insert_with(|| core::array::from_fn(|_| Histogram::new()));
    all.get_mut(slot as usize)
}

#[no_mangle]
pub extern "C" fn ws_hist_slots() -> u32 {
    HISTOGRAMS as u32
}

/// Empties histogram `slot`.
#[no_mangle]
pub extern "C" fn ws_hist_reset(slot: u32) -> i32 {
    match histogram(slot) {
        Some(h) => {
            *h = Histogram::new();
            OK
        }
        None => ERR_TOO_LONG,
    }
}

/// Records `times` (>= 1) observations of `value` ms; a NaN, negative or infinite
/// value is refused (`ERR_ARGUMENT`) and changes nothing.
#[no_mangle]
pub extern "C" fn ws_hist_record(slot: u32, value: f64, times: u32) -> i32 {
    match histogram(slot).map(|h| h.record_n(value, times as u64)) {
        Some(true) => OK,
        Some(false) => ERR_ARGUMENT,
        None => ERR_TOO_LONG,
    }
}

/// The q-quantile of histogram `slot`; NaN when it is empty, q is outside [0, 1] or the slot does not exist.
#[no_mangle]
pub extern "C" fn ws_hist_quantile(slot: u32, q: f64) -> f64 {
    histogram(slot).and_then(|h| h.quantile(q)).unwrap_or(f64::NAN)
}

/// The head of histogram `slot`'s protocol encoding: a pointer to four f64s,
/// `n, s, lo, hi` (all 0 when empty), valid until the next call. Its `b` pairs
/// are the non-zero entries of [`ws_hist_counts_ptr`]. Null for a slot that does not exist.
#[no_mangle]
pub extern "C" fn ws_hist_encode(slot: u32) -> *const f64 {
    let h = match histogram(slot) {
        Some(h) => h,
        None => return core::ptr::null(),
    };
    let (lo, hi) = h.encoded_min_max();
    let sum = if h.count == 0 { 0.0 } else { h.sum };
    let head = &mut instance().head;
    *head = [h.count as f64, sum, lo, hi];
    head.as_ptr()
}

/// Histogram `slot`'s bucket counts (`u64[166]`, index = bucket), read by
/// JavaScript for the encoding's `b`; null for a slot that does not exist.
#[no_mangle]
pub extern "C" fn ws_hist_counts_ptr(slot: u32) -> *const u64 {
    match histogram(slot) {
        Some(h) => h.counts.as_ptr(),
        None => core::ptr::null(),
    }
}

/// Adds histogram `from`'s observations to histogram `into` (merging a fleet's
/// or an interval's histograms). Decoding a received encoding is the control
/// plane's job; the edge only records, merges its own and encodes.
#[no_mangle]
pub extern "C" fn ws_hist_merge(into: u32, from: u32) -> i32 {
    if into == from {
        return ERR_ARGUMENT;
    }
    let source = match histogram(from) {
        Some(h) => h.clone(),
        None => return ERR_TOO_LONG,
    };
    match histogram(into) {
        Some(h) => {
            h.merge(&source);
            OK
        }
        None => ERR_TOO_LONG,
    }
}

#[cfg(all(target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Built with panic = "abort"; nothing may unwind into JavaScript.
    core::arch::wasm32::unreachable()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Mutex, MutexGuard};
    use waitstate_core::histogram::BUCKETS;

    /// The instance is one global: tests that touch it run one at a time.
    static LOCK: Mutex<()> = Mutex::new(());
    const T: f64 = 1_740_000_000_000.0;
    const ALLOWED: u32 = 16;

    fn fresh() -> MutexGuard<'static, ()> {
        let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        ws_reset();
        assert_eq!(ws_configure(0, 50.0), OK);
        for slot in 0..HISTOGRAMS as u32 {
            assert_eq!(ws_hist_reset(slot), OK);
        }
        guard
    }

    fn io() -> &'static mut [u8] {
        unsafe { core::slice::from_raw_parts_mut(ws_io_ptr(), ws_io_capacity() as usize) }
    }

    #[test]
    fn reports_its_abi_version() {
        assert_eq!(ws_abi_version(), 2);
    }

    #[test]
    fn arguments_are_converted_and_validated_not_trapped_on() {
        let _g = fresh();
        assert_eq!(ws_configure(3, 50.0), ERR_ARGUMENT);
        assert_eq!(ws_configure(1, f64::NAN), ERR_ARGUMENT);
        assert_eq!(ws_policy_tag(0, 1.0), ERR_STATE); // not staging
        assert_eq!(ws_policy_begin(1.0, 2, 0, 60.0), ERR_ARGUMENT);
        assert_eq!(ws_policy_begin(1.0, 0, 4, 60.0), ERR_ARGUMENT);
        assert_eq!(ws_policy_begin(-1.0, 0, 0, 60.0), ERR_ARGUMENT);
        assert_eq!(ws_policy_begin(f64::INFINITY, 0, 0, 60.0), OK);
        assert_eq!(ws_policy_tag(MAX_TAGS as u32, 1.0), ERR_TOO_LONG);
        assert_eq!(ws_policy_tag(1, f64::NAN), ERR_ARGUMENT);
        assert_eq!(ws_policy_tag(1, f64::INFINITY), OK); // exempt
        assert_eq!(ws_policy_commit(T), OK);
        assert_eq!(ws_gate(1, 1e300, T), ALLOWED);
        assert_eq!(ws_hmac_begin(IO_CAPACITY as u32 + 1), ERR_TOO_LONG);
        assert_eq!(ws_hmac_update(0), ERR_STATE);
        assert_eq!(ws_hmac_finish(), ERR_STATE);
        assert_eq!(ws_hist_record(HISTOGRAMS as u32, 1.0, 1), ERR_TOO_LONG);
        assert_eq!(ws_hist_reset(u32::MAX), ERR_TOO_LONG);
        assert!(ws_hist_encode(HISTOGRAMS as u32).is_null());
        assert!(ws_hist_counts_ptr(HISTOGRAMS as u32).is_null());
        assert!(ws_hist_quantile(HISTOGRAMS as u32, 0.5).is_nan());
        assert_eq!(ws_hist_merge(0, 0), ERR_ARGUMENT);
        assert_eq!(ws_hist_merge(0, HISTOGRAMS as u32), ERR_TOO_LONG);
        assert_eq!(ws_hist_merge(HISTOGRAMS as u32, 0), ERR_TOO_LONG);
    }

    #[test]
    fn kill_switch_outranks_cap_exceeded_through_the_abi() {
        let _g = fresh();
        assert_eq!(ws_policy_begin(f64::INFINITY, 1, 2, 60.0), OK);
        assert_eq!(ws_policy_commit(T), OK);
        assert_eq!(ws_gate(0, 1.0, T), 4); // kill_signal, denied
        assert_eq!(ws_policy_begin(0.0, 0, 2, 60.0), OK);
        assert_eq!(ws_policy_commit(T), OK);
        assert_eq!(ws_gate(0, 1.0, T), 2 | ALLOWED); // cap_exceeded
    }

    #[test]
    fn counters_are_readable_through_their_pointers() {
        let _g = fresh();
        ws_reset_counts(MAX_TAGS as u32);
        assert_eq!(ws_policy_begin(f64::INFINITY, 0, 0, 60.0), OK);
        assert_eq!(ws_policy_tag(1, 0.0), OK);
        assert_eq!(ws_policy_commit(T), OK);
        ws_gate(0, 1.0, T);
        ws_gate(1, 1.0, T);
        let (calls, bounced) = unsafe {
            (
                core::slice::from_raw_parts(ws_calls_ptr(), MAX_TAGS),
                core::slice::from_raw_parts(ws_bounced_ptr(), MAX_TAGS),
            )
        };
        assert_eq!((calls[0], bounced[0], calls[1], bounced[1]), (1, 0, 1, 1));
        ws_reset_counts(2);
        assert_eq!(unsafe { core::slice::from_raw_parts(ws_calls_ptr(), 2) }, &[0, 0]);
    }

    #[test]
    fn streaming_hmac_matches_one_shot() {
        let _g = fresh();
        io()[..3].copy_from_slice(b"key");
        assert_eq!(ws_hmac_begin(3), OK);
        for chunk in [&b"{\"a\":"[..], &b"1}"[..], &b".17"[..]] {
            io()[..chunk.len()].copy_from_slice(chunk);
            assert_eq!(ws_hmac_update(chunk.len() as u32), OK);
        }
        assert_eq!(ws_hmac_finish(), OK);
        let mut digest = [0u8; 32];
        waitstate_core::sign::sign_pulse(b"{\"a\":1}", b"17", b"key", &mut digest);
        let mut hex = [0u8; 64];
        waitstate_core::sign::to_hex(&digest, &mut hex);
        assert_eq!(&io()[..64], &hex[..]);
        assert_eq!(ws_hmac_finish(), ERR_STATE); // consumed
    }

    /// The encoding as JavaScript assembles it: the head, then the non-zero buckets as pairs.
    fn encoded(slot: u32) -> std::vec::Vec<f64> {
        let mut out = unsafe { core::slice::from_raw_parts(ws_hist_encode(slot), 4) }.to_vec();
        let counts = unsafe { core::slice::from_raw_parts(ws_hist_counts_ptr(slot), BUCKETS) };
        for (i, c) in counts.iter().enumerate().filter(|(_, c)| **c != 0) {
            out.extend([i as f64, *c as f64]);
        }
        out
    }

    #[test]
    fn histogram_slots_record_encode_merge() {
        let _g = fresh();
        assert_eq!(encoded(0), [0.0, 0.0, 0.0, 0.0]);
        assert!(ws_hist_quantile(0, 0.5).is_nan());
        assert_eq!(ws_hist_record(0, 0.05, 2), OK);
        assert_eq!(ws_hist_record(0, 1.0, 1), OK);
        assert_eq!(ws_hist_record(0, f64::NAN, 1), ERR_ARGUMENT);
        assert_eq!(ws_hist_record(0, 1.0, 0), ERR_ARGUMENT);
        let a = encoded(0);
        assert_eq!(a, [3.0, 1.1, 0.05, 1.0, 0.0, 2.0, 25.0, 1.0]);
        assert_eq!(ws_hist_quantile(0, 0.0), 0.1); // bucket 0's representative, within [min, max]
        assert_eq!(ws_hist_quantile(0, 1.0), 1.0);
        // Slot 1 gets slot 0's observations twice: counts double, min/max stay.
        assert_eq!(ws_hist_merge(1, 0), OK);
        assert_eq!(ws_hist_merge(1, 0), OK);
        assert_eq!(encoded(1), [6.0, 2.2, 0.05, 1.0, 0.0, 4.0, 25.0, 2.0]);
        assert_eq!(encoded(0), a);
        assert_eq!(ws_hist_reset(1), OK);
        assert_eq!(encoded(1), [0.0, 0.0, 0.0, 0.0]);
    }
}
