//! Fault injection, as `sdk-node/test/faults.test.ts`: three clients (one per
//! safe-mode strategy) gate a steady stream of calls while a local control
//! plane misbehaves in every way it can — 500s, garbage, a policy that fails
//! the schema, hanging, slow answers, accepting a pulse and dropping the
//! connection, refusing connections, and going away for longer than the lease
//! — then comes back.
//!
//! Every gate() result is checked against the model: the policy while the
//! lease holds, the safe-mode strategy once it has expired. At the end the
//! usage the control plane counted equals the calls each client made: nothing
//! lost, nothing counted twice.
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{eventually, ControlPlane, Errors, Fault};
use waitstate::{Gate, GateResult, Options, Policy, Reason, SafeModeStrategy, WaitState};

const LEASE_S: f64 = 2.0;
const SAFE_RPS: u64 = 40;
const CALLS: [(&str, f64); 5] = [("free", 1.0), ("pro", 3.0), ("pro", 8.0), ("enterprise", 20.0), ("", 1.0)];

struct Tracked {
    ws: WaitState,
    errors: Errors,
    strategy: SafeModeStrategy,
    calls: u64,
    mismatches: Vec<String>,
    lease_expired_allowed: u64,
    lease_expired_denied: u64,
    safe_mode_allowed_at: Vec<Instant>,
}

/// What the policy alone answers (no lease): a gate synced now with a day's lease.
fn on_policy(model: &Gate, tag: &str, weight: f64) -> GateResult {
    model.decide(if tag.is_empty() { "__default__" } else { tag }, weight, waitstate::gate::now_ms())
}

/// What gate() may answer for this client now: `Ok(result)` exactly, or `Err(reason)` (fixed_rps: the bucket decides).
fn expected(t: &Tracked, model: &Gate, tag: &str, weight: f64, now: f64) -> Result<GateResult, Reason> {
    let synced = match t.ws.local_gate().last_sync_at() {
        None => {
            return Ok(GateResult {
                allowed: true,
                reason: Reason::Allowed,
            })
        }
        Some(at) => at,
    };
    let policy = on_policy(model, tag, weight);
    if now <= synced + LEASE_S * 1000.0 {
        return Ok(policy);
    }
    match t.strategy {
        SafeModeStrategy::Open => Ok(GateResult {
            allowed: true,
            reason: Reason::LeaseExpired,
        }),
        SafeModeStrategy::LastPolicy => Ok(GateResult {
            allowed: policy.allowed,
            reason: Reason::LeaseExpired,
        }),
        SafeModeStrategy::FixedRps => Err(Reason::LeaseExpired),
    }
}

fn drive(tracked: &Mutex<Vec<Tracked>>, model: &Gate, spread: &AtomicBool, unique: &mut u64) {
    let mut all = tracked.lock().unwrap();
    for t in all.iter_mut() {
        for (tag, weight) in CALLS {
            // The model is read before and after: a sync landing between them may decide either way.
            let before = expected(t, model, tag, weight, waitstate::gate::now_ms());
            let got = t.ws.gate(tag, weight);
            let after = expected(t, model, tag, weight, waitstate::gate::now_ms());
            t.calls += 1;
            let fits = |want: &Result<GateResult, Reason>| match want {
                Ok(r) => *r == got,
                Err(reason) => *reason == got.reason,
            };
            if !fits(&before) && !fits(&after) && t.mismatches.len() < 5 {
                t.mismatches.push(format!(
                    "{:?} {}/{}: got {:?}, want {:?} or {:?}",
                    t.strategy, tag, weight, got, before, after
                ));
            }
            if got.reason == Reason::LeaseExpired {
                if got.allowed {
                    t.lease_expired_allowed += 1;
                    if t.strategy == SafeModeStrategy::FixedRps {
                        t.safe_mode_allowed_at.push(Instant::now());
                    }
                } else {
                    t.lease_expired_denied += 1;
                }
            }
        }
        if spread.load(Ordering::Relaxed) {
            // Thousands of distinct tags: memory and pulses must stay bounded.
            let tag = format!("t{}", unique);
            *unique += 1;
            t.ws.gate(&tag, 1);
            t.ws.report_latency(1.0, Some(&tag));
            t.calls += 1;
        }
    }
}

async fn phase(cp: &ControlPlane, tracked: &Mutex<Vec<Tracked>>, name: &str, fault: Fault, ms: u64, setup: impl FnOnce()) {
    cp.set_fault(fault);
    setup();
    tokio::time::sleep(Duration::from_millis(ms)).await;
    let end = waitstate::gate::now_ms();
    cp.set_fault(Fault::None);
    cp.with(|s| s.delay_ms = 0);
    if !cp.listening() {
        cp.listen();
    }
    let clients: Vec<WaitState> = tracked.lock().unwrap().iter().map(|t| t.ws.clone()).collect();
    eventually(&format!("resync after {}", name), Duration::from_secs(3), || {
        clients.iter().all(|ws| ws.status().last_sync_at.unwrap_or(0.0) > end)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_misbehaves_and_gate_keeps_answering_right() {
    let cp = ControlPlane::start(json!({
        "tagMaxWeights": {"free": 0, "pro": 5}, "globalMaxWeight": 10,
        "pulseInterval": 100, "leaseDurationSeconds": LEASE_S as u64,
    }))
    .await;
    let model = Gate::new(SafeModeStrategy::Open, 50.0);
    model.set_policy(
        Policy::from_json(r#"{"tagMaxWeights": {"free": 0, "pro": 5}, "globalMaxWeight": 10, "leaseDurationSeconds": 86400}"#).unwrap(),
    );
    let mut tracked = Vec::new();
    for (strategy, name) in [
        (SafeModeStrategy::Open, "open"),
        (SafeModeStrategy::FixedRps, "fixed_rps"),
        (SafeModeStrategy::LastPolicy, "last_policy"),
    ] {
        let (options, errors) = support::options(&cp, &format!("i-{}", name));
        let ws = WaitState::start(Options {
            safe_mode_strategy: strategy,
            safe_mode_max_rps: SAFE_RPS,
            ..options
        })
        .await
        .unwrap();
        tracked.push(Tracked {
            ws,
            errors,
            strategy,
            calls: 0,
            mismatches: Vec::new(),
            lease_expired_allowed: 0,
            lease_expired_denied: 0,
            safe_mode_allowed_at: Vec::new(),
        });
    }
    let tracked = Arc::new(Mutex::new(tracked));
    let spread = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicBool::new(true));
    let driver = {
        let (tracked, spread, running, model) = (tracked.clone(), spread.clone(), running.clone(), model.clone());
        std::thread::spawn(move || {
            let mut unique = 0u64;
            while running.load(Ordering::Relaxed) {
                drive(&tracked, &model, &spread, &mut unique);
                std::thread::sleep(Duration::from_millis(2));
            }
            unique
        })
    };
    let clients: Vec<WaitState> = tracked.lock().unwrap().iter().map(|t| t.ws.clone()).collect();

    // Bootstrap: allowed before the first sync, the policy once synced.
    eventually("first sync", Duration::from_secs(3), || clients.iter().all(|ws| ws.status().synced)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for t in tracked.lock().unwrap().iter_mut() {
        let r = t.ws.gate("free", 1);
        t.calls += 1;
        assert_eq!((r.allowed, r.reason), (false, Reason::TagBlocked));
        assert_eq!(t.mismatches, Vec::<String>::new());
    }

    // Short faults, each shorter than the lease: the last policy holds.
    phase(&cp, &tracked, "500", Fault::Error500, 600, || {}).await;
    phase(&cp, &tracked, "garbage", Fault::Garbage, 600, || {}).await;
    phase(&cp, &tracked, "bad policy", Fault::BadPolicy, 600, || {}).await;
    phase(&cp, &tracked, "hang", Fault::Hang, 800, || {}).await;
    phase(&cp, &tracked, "slow", Fault::None, 800, || cp.with(|s| s.delay_ms = 250)).await;
    phase(&cp, &tracked, "accept then drop", Fault::AcceptThenDrop, 600, || {}).await;
    phase(&cp, &tracked, "refused", Fault::None, 800, || cp.stop()).await;
    for t in tracked.lock().unwrap().iter() {
        assert_eq!(t.mismatches, Vec::<String>::new());
        assert_eq!(t.lease_expired_allowed + t.lease_expired_denied, 0, "{:?}", t.strategy);
        assert!(!t.ws.status().safe_mode);
        assert!(t.errors.has("PULSE_FAILED"), "{:?}", t.errors.codes());
        assert!(t.errors.has("INVALID_POLICY"), "{:?}", t.errors.codes());
        assert!(!t.errors.has("SAFE_MODE"));
    }
    // accept_then_drop made the clients re-send: counted once.
    assert!(cp.with(|s| s.pulses.iter().any(|p| !p.counted)));

    // An outage longer than the lease: safe mode by strategy, memory bounded.
    cp.stop();
    spread.store(true, Ordering::Relaxed);
    eventually("safe mode", Duration::from_secs(5), || {
        clients.iter().all(|ws| ws.status().safe_mode)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    spread.store(false, Ordering::Relaxed);
    for t in tracked.lock().unwrap().iter() {
        assert_eq!(t.mismatches, Vec::<String>::new());
        assert!(t.lease_expired_allowed > 0, "{:?}", t.strategy);
        match t.strategy {
            SafeModeStrategy::Open => assert_eq!(t.lease_expired_denied, 0),
            SafeModeStrategy::LastPolicy => assert!(t.lease_expired_denied > 0),
            SafeModeStrategy::FixedRps => {
                assert!(t.lease_expired_denied > 0);
                let times = &t.safe_mode_allowed_at;
                let span = times.last().unwrap().duration_since(times[0]).as_secs_f64();
                // A full bucket plus SAFE_RPS per second after it.
                let bound = SAFE_RPS + (SAFE_RPS as f64 * span).ceil() as u64 + 1;
                assert!(times.len() as u64 <= bound, "{} allowed in {} s", times.len(), span);
            }
        }
        assert_eq!(t.errors.codes().iter().filter(|c| **c == "SAFE_MODE").count(), 1);
        assert!(t.ws.status().pending_pulses <= 2, "{}", t.ws.status().pending_pulses);
    }

    // Back: normal gating on the next sync; the usage counted equals the calls made.
    cp.listen();
    eventually("resync", Duration::from_secs(5), || clients.iter().all(|ws| !ws.status().safe_mode)).await;
    let expired_before: Vec<u64> = tracked
        .lock()
        .unwrap()
        .iter()
        .map(|t| t.lease_expired_allowed + t.lease_expired_denied)
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, Ordering::Relaxed);
    let unique = driver.join().unwrap();
    for ws in &clients {
        ws.shutdown().await;
    }
    for (t, before) in tracked.lock().unwrap().iter().zip(expired_before) {
        assert_eq!(t.lease_expired_allowed + t.lease_expired_denied, before);
        assert_eq!(t.mismatches, Vec::<String>::new());
        assert_eq!(cp.counted_usage(t.ws.instance_id()), t.calls, "{:?}", t.strategy);
        assert!(!t.errors.has("SHUTDOWN_FLUSH_FAILED"));
    }
    cp.with(|s| {
        for p in &s.pulses {
            assert!(p.body["tagMetrics"].as_array().unwrap().len() <= 512);
            assert!(p.body.to_string().len() < 64 * 1024);
        }
        assert!(s
            .pulses
            .iter()
            .any(|p| p.body["tagMetrics"].as_array().unwrap().iter().any(|m| m["tag"] == "__other__")));
    });
    assert!(unique > 1000, "{}", unique);
}
