//! The client against a local control plane, one rule of docs/client.md at a
//! time: delivery outcomes (400 dropped, 429/503 kept and re-sent), the signed
//! key exchange and policy reads with If-None-Match, the kill switch in an
//! invalid policy, cap_exceeded and suspended pacing, duplicate instances,
//! bad options, telemetry in pulses, and shutdown's final pulse.
mod support;

use std::time::Duration;

use serde_json::json;
use support::{client, eventually, ControlPlane};
use waitstate::{Error, Options, Reason, WaitState};

fn policy() -> serde_json::Value {
    json!({"tagMaxWeights": {"free": 0}, "pulseInterval": 100, "leaseDurationSeconds": 60})
}

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_are_a_typed_error_naming_the_option() {
    let ok = || Options {
        publish_key: "ws_pub_x".into(),
        secret_key: "ws_sec_x".into(),
        base_url: "http://127.0.0.1:9".into(),
        ..Default::default()
    };
    let cases: Vec<(Options, &str)> = vec![
        (
            Options {
                publish_key: "".into(),
                ..ok()
            },
            "publish_key",
        ),
        (
            Options {
                secret_key: "".into(),
                ..ok()
            },
            "secret_key",
        ),
        (
            Options {
                base_url: "ftp://x".into(),
                ..ok()
            },
            "base_url",
        ),
        (
            Options {
                base_url: "not a url".into(),
                ..ok()
            },
            "base_url",
        ),
        (
            Options {
                site_id: Some("".into()),
                ..ok()
            },
            "site_id",
        ),
        (
            Options {
                site_id: Some("a b".into()),
                ..ok()
            },
            "site_id",
        ),
        (
            Options {
                instance_id: Some("x".repeat(129)),
                ..ok()
            },
            "instance_id",
        ),
        (
            Options {
                pulse_interval_secs: 0,
                ..ok()
            },
            "pulse_interval_secs",
        ),
        (
            Options {
                pulse_interval_ms: Some(50),
                ..ok()
            },
            "pulse_interval_ms",
        ),
        (
            Options {
                sync_interval_secs: 0,
                ..ok()
            },
            "sync_interval_secs",
        ),
        (
            Options {
                request_timeout_ms: 0,
                ..ok()
            },
            "request_timeout_ms",
        ),
    ];
    for (options, field) in cases {
        match WaitState::start(options).await {
            Err(Error::InvalidOptions { option, message }) => {
                assert_eq!(option, field);
                assert!(!message.is_empty());
            }
            other => panic!("{}: expected INVALID_OPTIONS, got {:?}", field, other.map(|_| ())),
        }
    }
    let e = WaitState::start(Options {
        secret_key: "".into(),
        ..ok()
    })
    .await
    .unwrap_err();
    assert_eq!(e.code(), "INVALID_OPTIONS");
    assert!(e.to_string().starts_with("INVALID_OPTIONS: secret_key: "));
    let ws = WaitState::start(ok()).await.unwrap();
    ws.shutdown().await;
}

#[test]
fn start_outside_a_runtime_is_a_typed_error() {
    let options = Options {
        publish_key: "ws_pub_x".into(),
        secret_key: "ws_sec_x".into(),
        base_url: "http://127.0.0.1:9".into(),
        ..Default::default()
    };
    // Polled by a plain executor, not tokio's.
    let result = futures::executor::block_on(WaitState::start(options));
    assert_eq!(result.unwrap_err(), Error::NoRuntime);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulses_carry_counts_and_telemetry_and_install_the_policy() {
    let cp = ControlPlane::start(policy()).await;
    let (ws, errors) = client(&cp, "i-telemetry").await;
    // The first pulse leaves at start, so its policy may already be in force:
    // the bootstrap allows, or the policy blocks, nothing else.
    let first = ws.gate("free", 1);
    assert!(
        (first.allowed && first.reason == Reason::Allowed) || first.reason == Reason::TagBlocked,
        "{:?}",
        first
    );
    eventually("sync", WAIT, || ws.status().synced).await;
    assert_eq!(ws.gate("free", 1).reason, Reason::TagBlocked);
    ws.report_latency(80.0, Some("free"));
    ws.report_latency(120.0, Some("free"));
    ws.report_error(Some("free"));
    assert!(ws.report("queue_depth", 7.0, Some("free")));
    assert!(!ws.report("Bad Name", 1.0, None));
    assert!(!ws.report_latency(f64::NAN, None));
    let timer = ws.start_timer(Some("pro"));
    assert!(timer.stop() >= 0.0);
    ws.shutdown().await;
    assert_eq!(cp.counted_usage("i-telemetry"), 2);
    cp.with(|s| {
        let with_free = s
            .pulses
            .iter()
            .flat_map(|p| p.body["tagMetrics"].as_array().unwrap().clone())
            .filter(|m| m["tag"] == "free" && m.get("latencyHistogram").is_some())
            .collect::<Vec<_>>();
        assert_eq!(with_free.len(), 1);
        let m = &with_free[0];
        assert_eq!(m["latencyHistogram"]["n"], 2);
        assert_eq!(m["latency"], 100.0);
        assert_eq!(m["errors"], 1);
        assert_eq!(
            m["customMetrics"]["queue_depth"],
            json!({"min": 7.0, "max": 7.0, "sum": 7.0, "count": 1})
        );
        assert!(s
            .pulses
            .iter()
            .any(|p| p.body["tagMetrics"].as_array().unwrap().iter().any(|m| m["tag"] == "pro")));
        // ts strictly increasing, prevTs chaining them.
        let ts: Vec<u64> = s.pulses.iter().map(|p| p.body["ts"].as_u64().unwrap()).collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "{:?}", ts);
        assert!(s.pulses.iter().skip(1).all(|p| p.body.get("prevTs").is_some()));
    });
    let codes = errors.codes();
    assert!(
        codes.contains(&"INVALID_METRIC_NAME") && codes.contains(&"INVALID_VALUE"),
        "{:?}",
        codes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_pulse_is_dropped_and_a_throttled_one_kept() {
    let cp = ControlPlane::start(policy()).await;
    let (ws, errors) = client(&cp, "i-reject").await;
    eventually("sync", WAIT, || ws.status().synced).await;
    // 429 and 503: kept and re-sent until accepted; nothing lost.
    cp.with(|s| s.pulse_fail_status = Some(429));
    for _ in 0..10 {
        ws.gate("pro", 1);
    }
    eventually("PULSE_FAILED", WAIT, || errors.has("PULSE_FAILED")).await;
    assert!(ws.status().pending_pulses >= 1);
    cp.with(|s| s.pulse_fail_status = Some(503));
    tokio::time::sleep(Duration::from_millis(300)).await;
    cp.with(|s| s.pulse_fail_status = None);
    eventually("the kept pulse delivered", WAIT, || cp.counted_usage("i-reject") == 10).await;
    assert!(!errors.has("PULSE_REJECTED"));
    // 400: dropped (re-sending the same bytes cannot succeed), reported with its calls.
    cp.with(|s| s.pulse_fail_status = Some(400));
    for _ in 0..5 {
        ws.gate("pro", 1);
    }
    eventually("PULSE_REJECTED", WAIT, || errors.has("PULSE_REJECTED")).await;
    cp.with(|s| s.pulse_fail_status = None);
    eventually("outbox empty", WAIT, || ws.status().pending_pulses == 0).await;
    ws.shutdown().await;
    let messages: Vec<String> = errors.0.lock().unwrap().iter().map(|e| e.message.clone()).collect();
    assert!(
        messages.iter().any(|m| m.contains("its 5 calls cannot be delivered")),
        "{:?}",
        messages
    );
    assert_eq!(cp.counted_usage("i-reject"), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_exchange_is_signed_and_reads_confirm_with_304() {
    let cp = ControlPlane::start(policy()).await;
    cp.with(|s| s.token_status = 401);
    let (ws, errors) = client(&cp, "i-auth").await;
    eventually("AUTH_FAILED", WAIT, || errors.has("AUTH_FAILED")).await;
    assert!(!ws.status().authenticated);
    cp.with(|s| s.token_status = 200);
    // Retried (1 s, ±20 %), then reads are made with the JWT.
    eventually("token", WAIT, || ws.status().authenticated).await;
    eventually("sync", WAIT, || ws.status().synced).await;
    // A read is skipped while the last sync is under one pulse interval old, and delivered
    // pulses sync every interval: reads are the path for when pulses fail, so make them fail.
    cp.with(|s| s.pulse_fail_status = Some(503));
    let before = ws.status().last_sync_at;
    // The ETag came with the last pulse's policy: the read names it and is answered 304,
    // which is a sync of its own (the pulses do not sync any more).
    eventually("a 304", Duration::from_secs(8), || {
        cp.with(|s| s.policy_read_statuses.contains(&304))
    })
    .await;
    eventually("the 304 syncs", WAIT, || ws.status().last_sync_at > before).await;
    // A new policy version reaches the client through a read, too.
    cp.set_policy(json!({"tagMaxWeights": {"free": 5}, "pulseInterval": 100, "leaseDurationSeconds": 60}));
    eventually("new policy", Duration::from_secs(8), || ws.gate("free", 1).allowed).await;
    cp.with(|s| s.pulse_fail_status = None);
    ws.shutdown().await;
    cp.with(|s| {
        assert!(
            s.policy_read_statuses.iter().all(|c| *c == 200 || *c == 304),
            "{:?}",
            s.policy_read_statuses
        );
        assert!(s.requests.iter().any(|r| r == "POST /v1/auth/token"));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_policy_with_the_kill_switch_is_obeyed() {
    let cp = ControlPlane::start(policy()).await;
    let (ws, errors) = client(&cp, "i-kill").await;
    eventually("sync", WAIT, || ws.status().synced).await;
    assert!(ws.gate("pro", 1).allowed);
    cp.with(|s| {
        s.policy["killSignal"] = json!(true);
        s.policy["status"] = json!("not-a-status");
    });
    eventually("kill", WAIT, || ws.gate("pro", 1).reason == Reason::KillSignal).await;
    assert!(!ws.gate("pro", 1).allowed);
    let messages: Vec<String> = errors.0.lock().unwrap().iter().map(|e| e.message.clone()).collect();
    assert!(
        messages.iter().any(|m| m.contains("kill switch, which is honoured")),
        "{:?}",
        messages
    );
    // An invalid policy without it changes nothing.
    cp.set_policy(policy());
    eventually("valid again", WAIT, || ws.gate("pro", 1).allowed).await;
    cp.with(|s| s.policy["status"] = json!("not-a-status"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(ws.gate("pro", 1).allowed);
    assert_eq!(ws.gate("free", 1).reason, Reason::TagBlocked);
    ws.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_exceeded_fails_open_and_paces_pulses_five_minutes_apart() {
    let cp = ControlPlane::start(
        json!({"status": "cap_exceeded", "tagMaxWeights": {"free": 0}, "pulseInterval": 100, "leaseDurationSeconds": 1}),
    )
    .await;
    let (ws, _errors) = client(&cp, "i-cap").await;
    eventually("sync", WAIT, || ws.status().synced).await;
    let r = ws.gate("free", 1);
    assert_eq!((r.allowed, r.reason), (true, Reason::CapExceeded));
    assert_eq!(ws.status().pulse_interval_ms, 300_000.0);
    let pulses = cp.pulse_count();
    // The lease of 1 s is extended by 600 s: no safe mode after it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ws.gate("free", 1).reason, Reason::CapExceeded);
    assert!(!ws.status().safe_mode);
    assert_eq!(cp.pulse_count(), pulses, "no pulse before 5 minutes");
    ws.shutdown().await;
    assert_eq!(cp.counted_usage("i-cap"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_stands_down_then_pulses_what_it_counted() {
    let cp =
        ControlPlane::start(json!({"status": "suspended", "retryAfterSeconds": 1, "pulseInterval": 100, "leaseDurationSeconds": 60})).await;
    let (ws, _errors) = client(&cp, "i-suspended").await;
    eventually("sync", WAIT, || ws.status().synced).await;
    let at_stand_down = cp.pulse_count();
    let r = ws.gate("free", 1);
    assert_eq!((r.allowed, r.reason), (true, Reason::Suspended));
    assert!(ws.status().suspended_until.is_some());
    cp.set_policy(policy());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(cp.pulse_count(), at_stand_down, "silent while suspended");
    eventually("resumed", WAIT, || cp.pulse_count() > at_stand_down).await;
    eventually("new policy", WAIT, || ws.gate("free", 1).reason == Reason::TagBlocked).await;
    ws.shutdown().await;
    let calls = cp.counted_usage("i-suspended");
    assert!(calls >= 2, "{}", calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_instance_is_reported() {
    let cp = ControlPlane::start(policy()).await;
    cp.with(|s| s.duplicate_instance = true);
    let (ws, errors) = client(&cp, "i-dup").await;
    eventually("DUPLICATE_INSTANCE", WAIT, || errors.has("DUPLICATE_INSTANCE")).await;
    assert!(ws.status().synced, "the pulse counts as delivered");
    ws.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_a_final_pulse_once_and_reports_a_failed_one() {
    let cp = ControlPlane::start(json!({"pulseInterval": 60000, "leaseDurationSeconds": 60})).await;
    let (ws, errors) = client(&cp, "i-final").await;
    eventually("sync", WAIT, || ws.status().synced).await;
    for _ in 0..7 {
        ws.gate("free", 1);
    }
    let other = ws.clone();
    tokio::join!(ws.shutdown(), other.shutdown());
    assert_eq!(cp.counted_usage("i-final"), 7);
    assert!(ws.status().shut_down);
    assert!(ws.gate("free", 1).allowed, "gate keeps answering after shutdown");
    assert!(!errors.has("SHUTDOWN_FLUSH_FAILED"));

    let (ws, errors) = client(&cp, "i-final-down").await;
    eventually("sync", WAIT, || ws.status().synced).await;
    ws.gate("free", 1);
    ws.gate("free", 1);
    cp.stop();
    ws.shutdown().await;
    let messages: Vec<String> = errors.0.lock().unwrap().iter().map(|e| e.message.clone()).collect();
    assert!(errors.has("SHUTDOWN_FLUSH_FAILED"), "{:?}", errors.codes());
    assert!(
        messages.iter().any(|m| m.contains("2 calls of this instance were not reported")),
        "{:?}",
        messages
    );
}
