//! gate() allocates nothing once a tag has been seen: counted by a global
//! allocator that counts the allocations of the measuring thread only (the
//! test harness's own thread allocates now and then, at moments of its own).
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use waitstate::{Gate, Options, Policy, Reason, SafeModeStrategy, WaitState};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the thread inside [`allocations`]; a `Cell<bool>` needs no destructor, so reading it never allocates.
    static MEASURING: Cell<bool> = Cell::new(false);
}

fn count() {
    if MEASURING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f`.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    MEASURING.with(|m| m.set(true));
    f();
    MEASURING.with(|m| m.set(false));
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

const POLICY: &str = r#"{"globalMaxWeight": 10, "tagMaxWeights": {"free": 0, "pro": 5, "internal": null}, "leaseDurationSeconds": 60}"#;
const T: f64 = 1_740_000_000_000.0;
const TAGS: [&str; 5] = ["free", "pro", "internal", "other", ""];

fn calls(gate: &Gate, now: f64) -> [u32; 8] {
    let mut reasons = [0u32; 8];
    for i in 0..10_000 {
        let tag = TAGS[i % TAGS.len()];
        let r = gate.gate_at(tag, (i % 12) as f64, now + (i / 100) as f64);
        reasons[r.reason as usize] += 1;
    }
    reasons
}

#[test]
fn gate_allocates_nothing_once_a_tag_was_seen() {
    // The counter counts: a Vec allocates.
    let mut kept = Vec::new();
    assert_eq!(allocations(|| kept.push(String::from("x"))), 2);
    assert_eq!(kept.len(), 1);

    for strategy in [SafeModeStrategy::Open, SafeModeStrategy::FixedRps, SafeModeStrategy::LastPolicy] {
        let gate = Gate::new(strategy, 50.0);
        // Bootstrap, then the first call of each tag (which may allocate its counter).
        for tag in TAGS {
            gate.gate_at(tag, 1.0, T);
        }
        let mut reasons = [0u32; 8];
        assert_eq!(allocations(|| reasons = calls(&gate, T)), 0, "{:?}: bootstrap", strategy);
        assert_eq!(reasons[Reason::Allowed as usize], 10_000);

        gate.install_at(Some(Policy::from_json(POLICY).unwrap()), Some(T));
        assert_eq!(allocations(|| reasons = calls(&gate, T)), 0, "{:?}: in lease", strategy);
        for reason in [Reason::Allowed, Reason::TagBlocked, Reason::OverWeight] {
            assert!(reasons[reason as usize] > 0, "{:?}: {:?} never happened", strategy, reason);
        }
        assert_eq!(allocations(|| reasons = calls(&gate, T + 61_000.0)), 0, "{:?}: safe mode", strategy);
        assert_eq!(reasons[Reason::LeaseExpired as usize], 10_000);
        gate.set_policy_at(Policy::kill_switch(&serde_json::json!({"killSignal": true})).unwrap(), T);
        assert_eq!(allocations(|| reasons = calls(&gate, T)), 0, "{:?}: kill", strategy);
        assert_eq!(reasons[Reason::KillSignal as usize], 10_000);
    }

    // Through the client: the background task does not run between these calls (one thread).
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let ws = WaitState::start(Options {
            publish_key: "ws_pub_x".into(),
            secret_key: "ws_sec_x".into(),
            base_url: "http://127.0.0.1:9".into(),
            push: false,
            on_error: Some(std::sync::Arc::new(|_: &waitstate::WaitStateError| {})),
            ..Default::default()
        })
        .await
        .unwrap();
        ws.set_policy(Policy::from_json(POLICY).unwrap());
        for tag in TAGS {
            ws.gate(tag, 1);
        }
        let mut denied = 0;
        let n = allocations(|| {
            for i in 0..10_000 {
                denied += u32::from(!ws.gate(TAGS[i % TAGS.len()], (i % 12) as f64).allowed);
            }
        });
        assert_eq!(n, 0, "WaitState::gate");
        assert!(denied > 0);
    });
}
