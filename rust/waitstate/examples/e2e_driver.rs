//! A Rust service's side of the end-to-end test (`e2e/rust-crate.test.ts`):
//! one `WaitState` against a real control plane, driven by the test through
//! JSON lines on stdin, one answer per line on stdout. Errors the client
//! reports go to stderr, one JSON line each.
//!
//! Configured by the environment: `WS_BASE_URL`, `WS_PUBLISH_KEY`,
//! `WS_SECRET_KEY`, `WS_SITE_ID`, `WS_INSTANCE_ID`, `WS_PUSH` (`0` turns push
//! off), `WS_SAFE_MODE_STRATEGY` (`open`, `fixed_rps`, `last_policy`),
//! `WS_SAFE_MODE_MAX_RPS`, `WS_SYNC_INTERVAL_SECS`.
//!
//! Commands (`{"cmd": …}`), each answered with the gate calls made so far (`gateCalls`):
//! - `gate {tag, weight, n}`: n gate calls; how many were allowed, by reason
//! - `latency {tag, ms, n}`: n latency reports
//! - `until {tag, reason, timeoutMs}`: gate calls every millisecond until one
//!   answers `reason`; how long that took, measured here
//! - `status`: the client's status
//! - `shutdown`: the final pulse, then exit
use std::collections::BTreeMap;
use std::env;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use waitstate::{Options, SafeModeStrategy, Status, WaitState, WaitStateError};

fn var(name: &str) -> String {
    env::var(name).unwrap_or_else(|_| panic!("{} is required", name))
}

fn status_json(s: &Status) -> Value {
    json!({
        "synced": s.synced,
        "authenticated": s.authenticated,
        "lastSyncAt": s.last_sync_at,
        "policyVersion": s.policy_version,
        "policyStatus": s.policy_status.map(|p| p.as_str()),
        "safeMode": s.safe_mode,
        "consecutiveFailures": s.consecutive_failures,
        "pendingPulses": s.pending_pulses,
        "pulseIntervalMs": s.pulse_interval_ms,
    })
}

#[tokio::main]
async fn main() {
    let strategy = match env::var("WS_SAFE_MODE_STRATEGY").as_deref() {
        Ok("fixed_rps") => SafeModeStrategy::FixedRps,
        Ok("last_policy") => SafeModeStrategy::LastPolicy,
        _ => SafeModeStrategy::Open,
    };
    let on_error = Arc::new(|e: &WaitStateError| {
        eprintln!(
            "{}",
            json!({"error": {"code": e.code.as_str(), "status": e.status, "message": e.message}})
        );
    });
    let options = Options {
        publish_key: var("WS_PUBLISH_KEY"),
        secret_key: var("WS_SECRET_KEY"),
        base_url: var("WS_BASE_URL"),
        site_id: env::var("WS_SITE_ID").ok(),
        instance_id: env::var("WS_INSTANCE_ID").ok(),
        push: env::var("WS_PUSH").map_or(true, |v| v != "0"),
        safe_mode_strategy: strategy,
        safe_mode_max_rps: env::var("WS_SAFE_MODE_MAX_RPS").ok().and_then(|v| v.parse().ok()).unwrap_or(50),
        sync_interval_secs: env::var("WS_SYNC_INTERVAL_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(30),
        on_error: Some(on_error),
        ..Default::default()
    };
    let ws = match WaitState::start(options).await {
        Ok(ws) => ws,
        Err(e) => {
            println!("{}", json!({"fatal": e.to_string()}));
            std::process::exit(2);
        }
    };
    println!("{}", json!({"ready": true, "instanceId": ws.instance_id()}));

    // stdin on a thread of its own: a blocking read must not hold a runtime worker.
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines().flatten() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut calls: u64 = 0;
    while let Some(line) = lines.recv().await {
        let cmd: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                println!("{}", json!({ "fatal": format!("bad command {:?}: {}", line, e) }));
                continue;
            }
        };
        let tag = cmd["tag"].as_str().unwrap_or("default").to_string();
        let mut answer = match cmd["cmd"].as_str().unwrap_or("") {
            "gate" => {
                let weight = cmd["weight"].as_f64().unwrap_or(1.0);
                let n = cmd["n"].as_u64().unwrap_or(1);
                let mut reasons: BTreeMap<&'static str, u64> = BTreeMap::new();
                let mut allowed = 0;
                for _ in 0..n {
                    let r = ws.gate(&tag, weight);
                    calls += 1;
                    allowed += u64::from(r.allowed);
                    *reasons.entry(r.reason.as_str()).or_default() += 1;
                }
                json!({"allowed": allowed, "denied": n - allowed, "reasons": reasons})
            }
            "latency" => {
                let ms = cmd["ms"].as_f64().unwrap_or(0.0);
                let n = cmd["n"].as_u64().unwrap_or(1);
                let accepted = (0..n).filter(|_| ws.report_latency(ms, Some(&tag))).count();
                json!({ "accepted": accepted })
            }
            "until" => {
                let want = cmd["reason"].as_str().unwrap_or("").to_string();
                let timeout = Duration::from_millis(cmd["timeoutMs"].as_u64().unwrap_or(5000));
                let started = Instant::now();
                let mut seen = false;
                while started.elapsed() < timeout {
                    let r = ws.gate(&tag, 1);
                    calls += 1;
                    if r.reason.as_str() == want {
                        seen = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                json!({"seen": seen, "elapsedMs": started.elapsed().as_secs_f64() * 1000.0})
            }
            "status" => json!({}),
            "shutdown" => {
                ws.shutdown().await;
                println!("{}", json!({"gateCalls": calls, "status": status_json(&ws.status())}));
                return;
            }
            other => json!({ "fatal": format!("unknown command {:?}", other) }),
        };
        answer["gateCalls"] = json!(calls);
        answer["status"] = status_json(&ws.status());
        println!("{}", answer);
    }
    ws.shutdown().await;
}
