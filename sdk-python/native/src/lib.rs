//! `waitstate._native`: the Rust crate `waitstate` for CPython (PyO3 0.17).
//!
//! [`Engine`] owns a tokio runtime (one worker thread) on which the crate's
//! background task pulses, reads the policy and keeps the lease; Python threads
//! only call `gate()` and the report methods, which are in memory and short, so
//! they keep the GIL (releasing and retaking it would cost more than the gate).
//! Nothing on the runtime ever waits for the GIL: background failures go
//! through a channel to one thread that hands them to Python's `on_error`, so a
//! Python thread blocked in the crate can never deadlock against it. Blocking
//! calls (`shutdown`) release the GIL.
//!
//! The rest of the module is the crate's pure parts (policy validation, the
//! gate at a given time, the histogram, signing, the lifecycle rules) for
//! `waitstate.advanced` and the shared vectors.
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use serde_json::{json, Map, Value};

use waitstate::lifecycle::{self as lc, Action, Event, LifecyclePolicy, LifecycleState, PolicySource, TokenEvent, TokenState};
use waitstate::{Options, SafeModeStrategy, WaitState};
use waitstate_core::gate::{decide, GateState, Limit, Policy as CorePolicy, Status};
use waitstate_core::histogram::{self, Histogram as CoreHistogram};
use waitstate_core::policy::{parse_policy as core_parse_policy, WirePolicy};
use waitstate_core::sign::Signer;

const DEFAULT_TAG: &str = "__default__";
/// Every (reason, allowed) pair: results are indexed `2 * reason + allowed`.
const RESULT_COUNT: usize = 16;

type ErrorMessage = (&'static str, u16, String);

fn strategy_of(name: &str) -> PyResult<SafeModeStrategy> {
    match name {
        "open" => Ok(SafeModeStrategy::Open),
        "fixed_rps" => Ok(SafeModeStrategy::FixedRps),
        "last_policy" => Ok(SafeModeStrategy::LastPolicy),
        other => Err(PyValueError::new_err(format!("unknown safe_mode_strategy {:?}", other))),
    }
}

/// A tag argument: a non-empty `str`, else the default tag (gate() never raises).
fn tag_of(tag: Option<&PyAny>) -> Option<&str> {
    let s = tag?.downcast::<PyString>().ok()?.to_str().ok()?;
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

/// A number argument; anything else is NaN (the gate takes NaN as 1, telemetry refuses it).
fn number_of(value: Option<&PyAny>, absent: f64) -> f64 {
    match value {
        None => absent,
        Some(v) => v.extract::<f64>().unwrap_or(f64::NAN),
    }
}

/// The in-process client.
#[pyclass(module = "waitstate._native")]
struct Engine {
    ws: WaitState,
    results: Vec<PyObject>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    errors: Arc<Mutex<Option<mpsc::Sender<ErrorMessage>>>>,
    error_thread: Mutex<Option<JoinHandle<()>>>,
}

#[pymethods]
impl Engine {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        publish_key: String,
        secret_key: String,
        base_url: String,
        site_id: Option<String>,
        instance_id: String,
        pulse_interval_ms: u64,
        safe_mode_strategy: &str,
        safe_mode_max_rps: f64,
        request_timeout_ms: u64,
        push: bool,
        on_error: PyObject,
        error_class: PyObject,
        results: &PyTuple,
    ) -> PyResult<Self> {
        let results: Vec<PyObject> = results.iter().map(|r| r.into_py(py)).collect();
        if results.len() != RESULT_COUNT {
            return Err(PyValueError::new_err("results must hold the 16 GateResult values"));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("waitstate")
            .enable_all()
            .build()
            .map_err(|e| PyValueError::new_err(format!("cannot start the WaitState runtime: {}", e)))?;

        let (tx, rx) = mpsc::channel::<ErrorMessage>();
        let reporter_class = error_class.clone_ref(py);
        let error_thread = std::thread::Builder::new()
            .name("waitstate-errors".into())
            .spawn(move || {
                for (code, status, message) in rx {
                    Python::with_gil(|py| {
                        if let Ok(error) = reporter_class.call1(py, (code, message, status)) {
                            // on_error is the SDK's safe reporter: it never raises.
                            let _ = on_error.call1(py, (error,));
                        }
                    });
                }
            })
            .map_err(|e| PyValueError::new_err(format!("cannot start the WaitState error thread: {}", e)))?;
        let errors = Arc::new(Mutex::new(Some(tx)));
        let sink = errors.clone();
        let options = Options {
            publish_key,
            secret_key,
            base_url,
            site_id,
            instance_id: Some(instance_id),
            safe_mode_max_rps: safe_mode_max_rps.max(0.0).ceil() as u64,
            safe_mode_strategy: strategy_of(safe_mode_strategy)?,
            request_timeout_ms,
            pulse_interval_ms: Some(pulse_interval_ms),
            push,
            on_error: Some(Arc::new(move |e: &waitstate::WaitStateError| {
                if let Ok(guard) = sink.lock() {
                    if let Some(tx) = guard.as_ref() {
                        let _ = tx.send((e.code.as_str(), e.status, e.message.clone()));
                    }
                }
            })),
            ..Options::default()
        };
        let started = runtime.block_on(WaitState::start(options));
        match started {
            Ok(ws) => Ok(Engine {
                ws,
                results,
                runtime: Mutex::new(Some(runtime)),
                errors,
                error_thread: Mutex::new(Some(error_thread)),
            }),
            Err(waitstate::Error::InvalidOptions { option, message }) => {
                close_errors(&errors, &Mutex::new(Some(error_thread)));
                runtime.shutdown_background();
                let error = error_class.call1(
                    py,
                    ("INVALID_OPTIONS", format!("WaitstateConfig: {}: {}", option, message), 0, option),
                )?;
                Err(PyErr::from_value(error.as_ref(py)))
            }
            Err(other) => {
                close_errors(&errors, &Mutex::new(Some(error_thread)));
                runtime.shutdown_background();
                Err(PyValueError::new_err(other.to_string()))
            }
        }
    }

    /// `gate(tag="__default__", weight=1)`: one of the 16 shared GateResult values.
    fn gate(&self, py: Python<'_>, tag: Option<&PyAny>, weight: Option<&PyAny>) -> PyObject {
        let r = self.ws.gate(tag_of(tag).unwrap_or(DEFAULT_TAG), number_of(weight, 1.0));
        self.results[(r.reason as usize) * 2 + r.allowed as usize].clone_ref(py)
    }

    fn report_latency(&self, ms: Option<&PyAny>, tag: Option<&PyAny>) {
        self.ws.report_latency(number_of(ms, f64::NAN), tag_of(tag));
    }

    fn report_error(&self, tag: Option<&PyAny>) {
        self.ws.report_error(tag_of(tag));
    }

    fn report(&self, metric: Option<&PyAny>, value: Option<&PyAny>, tag: Option<&PyAny>) {
        let name = metric
            .and_then(|m| m.downcast::<PyString>().ok())
            .and_then(|s| s.to_str().ok())
            .unwrap_or("");
        self.ws.report(name, number_of(value, f64::NAN), tag_of(tag));
    }

    fn status<'py>(&self, py: Python<'py>) -> PyResult<&'py PyDict> {
        let s = self.ws.status();
        let d = PyDict::new(py);
        d.set_item("mode", "in_process")?;
        d.set_item("instance_id", s.instance_id)?;
        d.set_item("synced", s.synced)?;
        d.set_item("authenticated", s.authenticated)?;
        d.set_item("last_sync_at", s.last_sync_at)?;
        d.set_item("policy_version", s.policy_version)?;
        d.set_item("policy_status", s.policy_status.map(|p| p.as_str()))?;
        d.set_item("safe_mode", s.safe_mode)?;
        d.set_item("suspended_until", s.suspended_until)?;
        d.set_item("consecutive_failures", s.consecutive_failures)?;
        d.set_item("pending_pulses", s.pending_pulses)?;
        d.set_item("pulse_interval_ms", s.pulse_interval_ms)?;
        d.set_item("shut_down", s.shut_down)?;
        Ok(d)
    }

    /// Stops the background task and sends the final pulse, without the GIL
    /// (on_error may need it meanwhile). Idempotent.
    fn shutdown(&self, py: Python<'_>) {
        let runtime = match self.runtime.lock() {
            Ok(mut guard) => guard.take(),
            Err(_) => None,
        };
        let runtime = match runtime {
            Some(r) => r,
            None => return,
        };
        let ws = self.ws.clone();
        py.allow_threads(|| {
            runtime.block_on(ws.shutdown());
            runtime.shutdown_background();
            close_errors(&self.errors, &self.error_thread);
        });
    }
}

/// Closes the error channel and waits for the last errors to reach Python (call without the GIL).
fn close_errors(errors: &Mutex<Option<mpsc::Sender<ErrorMessage>>>, thread: &Mutex<Option<JoinHandle<()>>>) {
    if let Ok(mut guard) = errors.lock() {
        guard.take();
    }
    let handle = thread.lock().ok().and_then(|mut guard| guard.take());
    if let Some(handle) = handle {
        let _ = handle.join();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Dropped without shutdown(): stop the runtime without blocking (the
        // GIL is held here); the error thread ends once its channel closes.
        if let Ok(mut guard) = self.runtime.lock() {
            if let Some(runtime) = guard.take() {
                runtime.shutdown_background();
            }
        }
        if let Ok(mut guard) = self.errors.lock() {
            guard.take();
        }
    }
}

// ------------------------------------------------------------------ pure parts

fn hex_hmac(secret_key: &str, parts: &[&[u8]]) -> String {
    let mut signer = Signer::new(secret_key.as_bytes());
    for part in parts {
        signer.update(part);
    }
    let mut out = [0u8; 64];
    signer.finish_hex(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Hex HMAC-SHA256 of `body + "." + timestamp` keyed with the secret key.
#[pyfunction]
fn sign_pulse(body: &str, timestamp: &str, secret_key: &str) -> String {
    hex_hmac(secret_key, &[body.as_bytes(), b".", timestamp.as_bytes()])
}

/// The token exchange's signature: over `"POST\n/v1/auth/token\n" + body + "." + timestamp`.
#[pyfunction]
fn sign_token_exchange(body: &str, timestamp: &str, secret_key: &str) -> String {
    hex_hmac(
        secret_key,
        &[b"POST\n/v1/auth/token\n", body.as_bytes(), b".", timestamp.as_bytes()],
    )
}

fn parse_json(text: &str) -> PyResult<Value> {
    serde_json::from_str(text).map_err(|e| PyValueError::new_err(format!("not JSON: {}", e)))
}

fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

fn wire_policy_json(p: &WirePolicy) -> Value {
    let mut tags = Map::new();
    for (tag, limit) in &p.tag_max_weights {
        tags.insert(tag.clone(), limit.map(number).unwrap_or(Value::Null));
    }
    let mut out = Map::new();
    out.insert("version".into(), json!(p.version));
    out.insert("globalMaxWeight".into(), p.global_max_weight.map(number).unwrap_or(Value::Null));
    out.insert("tagMaxWeights".into(), Value::Object(tags));
    out.insert("killSignal".into(), json!(p.kill_signal));
    out.insert("status".into(), json!(p.status.as_str()));
    out.insert("pulseInterval".into(), json!(p.pulse_interval));
    out.insert("leaseDurationSeconds".into(), json!(p.lease_duration_seconds));
    if let Some(at) = p.issued_at {
        out.insert("issuedAt".into(), json!(at));
    }
    if let Some(s) = p.retry_after_seconds {
        out.insert("retryAfterSeconds".into(), json!(s));
    }
    Value::Object(out)
}

/// Validates a policy (JSON text): `(True, normalized JSON, "")` or `(False, path, message)`.
#[pyfunction]
fn parse_policy(text: &str) -> PyResult<(bool, String, String)> {
    let value = parse_json(text)?;
    Ok(match core_parse_policy(&value) {
        Ok(p) => (true, wire_policy_json(&p).to_string(), String::new()),
        Err(e) => (false, e.path, e.message.to_string()),
    })
}

/// The gate decision of the core with an explicit clock: a policy as received
/// (its lease as given), the safe-mode bucket, no counting and no background
/// work. For the shared vectors and replays.
#[pyclass(module = "waitstate._native")]
struct PureGate {
    state: GateState,
    policy: Option<(CorePolicy, Vec<(String, Option<f64>)>)>,
}

#[pymethods]
impl PureGate {
    #[new]
    fn new(strategy: &str, safe_mode_max_rps: f64) -> PyResult<Self> {
        Ok(PureGate {
            state: GateState::new(strategy_of(strategy)?, safe_mode_max_rps),
            policy: None,
        })
    }

    /// Installs a policy (JSON text) synced at `now`; a policy that fails validation raises ValueError.
    fn set_policy_at(&mut self, text: &str, now: f64) -> PyResult<()> {
        let wire = core_parse_policy(&parse_json(text)?).map_err(|e| PyValueError::new_err(e.to_string()))?;
        self.policy = Some((wire.gate_policy(), wire.tag_max_weights));
        self.state.mark_synced(now);
        Ok(())
    }

    fn gate_at(&mut self, tag: Option<&PyAny>, weight: Option<&PyAny>, now: f64) -> (bool, &'static str) {
        let tag = tag_of(tag).unwrap_or(DEFAULT_TAG);
        let limit = match &self.policy {
            Some((_, tags)) => tags
                .iter()
                .find(|(t, _)| t == tag)
                .map(|(_, v)| Limit::Tag(*v))
                .unwrap_or(Limit::Global),
            None => Limit::Global,
        };
        let d = decide(
            self.policy.as_ref().map(|(p, _)| p),
            &mut self.state,
            now,
            limit,
            number_of(weight, 1.0),
        );
        (d.allowed, d.reason.as_str())
    }
}

/// The mergeable latency histogram of every SDK.
#[pyclass(module = "waitstate._native")]
#[derive(Clone)]
struct Histogram {
    inner: CoreHistogram,
}

#[pymethods]
impl Histogram {
    #[new]
    fn new() -> Self {
        Histogram {
            inner: CoreHistogram::new(),
        }
    }

    #[staticmethod]
    fn bucket_index(value: f64) -> usize {
        histogram::bucket_index(&histogram::upper_bounds(), value)
    }

    #[staticmethod]
    fn upper_bounds() -> Vec<f64> {
        histogram::upper_bounds().to_vec()
    }

    fn record(&mut self, value: f64) -> bool {
        self.inner.record(value)
    }

    fn merge(&mut self, other: &Histogram) {
        self.inner.merge(&other.inner);
    }

    fn quantile(&self, q: f64) -> Option<f64> {
        self.inner.quantile(q)
    }

    /// `(n, s, lo, hi, [index, count, …])`, the wire encoding's fields.
    fn encode(&self) -> (u64, f64, f64, f64, Vec<u64>) {
        let mut pairs = vec![0u64; 2 * histogram::BUCKETS];
        let used = self.inner.encode_pairs(&mut pairs);
        pairs.truncate(used);
        let (lo, hi) = self.inner.encoded_min_max();
        (self.inner.count, self.inner.sum, lo, hi, pairs)
    }

    #[staticmethod]
    fn decode(n: f64, s: f64, lo: f64, hi: f64, pairs: Vec<f64>) -> PyResult<Histogram> {
        CoreHistogram::decode(n, s, lo, hi, &pairs)
            .map(|inner| Histogram { inner })
            .map_err(|e| PyValueError::new_err(format!("{:?}", e)))
    }
}

// ------------------------------------------------------------------ the lifecycle rules

#[pyfunction]
fn round_ms(ms: f64) -> f64 {
    lc::round_ms(ms)
}

#[pyfunction]
fn pulse_delay_ms(interval_ms: f64, random: f64) -> f64 {
    lc::pulse_delay_ms(interval_ms, random)
}

#[pyfunction]
fn poll_delay_ms(interval_ms: f64, random: f64) -> f64 {
    lc::poll_delay_ms(interval_ms, random)
}

#[pyfunction]
fn backoff_ms(interval_ms: f64, lease_ms: f64, failures: u32, random: f64) -> f64 {
    lc::backoff_ms(interval_ms, lease_ms, failures, random)
}

#[pyfunction]
fn token_refresh_delay_ms(expires_at: f64, now: f64) -> f64 {
    lc::token_refresh_delay_ms(expires_at, now)
}

#[pyfunction]
fn token_retry_delay_ms(failures: u32, random: f64) -> f64 {
    lc::token_retry_delay_ms(failures, random)
}

#[pyfunction]
fn classify_pulse_answer(status: Option<u16>, counted: bool, policy_valid: bool) -> &'static str {
    lc::classify_pulse_answer(status, counted, policy_valid).as_str()
}

#[pyfunction]
fn classify_poll_answer(status: Option<u16>, policy_valid: bool) -> &'static str {
    lc::classify_poll_answer(status, policy_valid).as_str()
}

#[pyfunction]
fn pulse_leaves_outbox(outcome: &str) -> PyResult<bool> {
    let outcome = match outcome {
        "policy" => lc::PulseOutcome::Policy,
        "counted" => lc::PulseOutcome::Counted,
        "not_delivered" => lc::PulseOutcome::NotDelivered,
        "rejected" => lc::PulseOutcome::Rejected,
        "retry" => lc::PulseOutcome::Retry,
        other => return Err(PyValueError::new_err(format!("unknown pulse outcome {:?}", other))),
    };
    Ok(lc::pulse_leaves_outbox(outcome))
}

fn status_of(name: &str) -> PyResult<Status> {
    match name {
        "ok" => Ok(Status::Ok),
        "over_limit" => Ok(Status::OverLimit),
        "cap_exceeded" => Ok(Status::CapExceeded),
        "suspended" => Ok(Status::Suspended),
        other => Err(PyValueError::new_err(format!("unknown policy status {:?}", other))),
    }
}

fn f(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn lifecycle_policy(v: &Value) -> PyResult<LifecyclePolicy> {
    Ok(LifecyclePolicy {
        status: status_of(v.get("status").and_then(Value::as_str).unwrap_or("ok"))?,
        pulse_interval: f(v, "pulseInterval").unwrap_or(5000.0),
        lease_duration_seconds: f(v, "leaseDurationSeconds").unwrap_or(60.0),
        issued_at: f(v, "issuedAt"),
        retry_after_seconds: f(v, "retryAfterSeconds"),
    })
}

/// The pacing of a policy (JSON text with status, pulseInterval, …): `(interval_ms, lease_seconds, stand_down_ms)`.
#[pyfunction]
fn policy_pacing(text: &str) -> PyResult<(Option<f64>, f64, Option<f64>)> {
    let p = lc::pacing(&lifecycle_policy(&parse_json(text)?)?);
    Ok((p.interval_ms, p.lease_seconds, p.stand_down_ms))
}

fn opt(v: Option<f64>) -> Value {
    v.map(number).unwrap_or(Value::Null)
}

/// The client lifecycle as a state machine, events and state as JSON text
/// (the field names of `protocol/src/lifecycle.ts`).
#[pyclass(module = "waitstate._native")]
struct Lifecycle {
    state: LifecycleState,
}

#[pymethods]
impl Lifecycle {
    #[new]
    fn new(pulse_interval_ms: f64) -> Self {
        Lifecycle {
            state: LifecycleState::new(pulse_interval_ms),
        }
    }

    /// Overrides the fields present in `text`.
    fn merge_state(&mut self, text: &str) -> PyResult<()> {
        let v = parse_json(text)?;
        let s = &mut self.state;
        let optional = |key: &str, field: &mut Option<f64>| {
            if let Some(x) = v.get(key) {
                *field = x.as_f64();
            }
        };
        optional("lastSyncAt", &mut s.last_sync_at);
        optional("policyIssuedAt", &mut s.policy_issued_at);
        optional("suspendedUntil", &mut s.suspended_until);
        optional("nextPulseAt", &mut s.next_pulse_at);
        optional("nextPollAt", &mut s.next_poll_at);
        if let Some(x) = f(&v, "intervalMs") {
            s.interval_ms = x;
        }
        if let Some(x) = f(&v, "leaseMs") {
            s.lease_ms = x;
        }
        if let Some(x) = v.get("failures").and_then(Value::as_u64) {
            s.failures = x as u32;
        }
        if let Some(x) = v.get("safeMode").and_then(Value::as_bool) {
            s.safe_mode = x;
        }
        if let Some(x) = v.get("stopped").and_then(Value::as_bool) {
            s.stopped = x;
        }
        Ok(())
    }

    fn state(&self) -> String {
        let s = &self.state;
        json!({
            "intervalMs": number(s.interval_ms),
            "leaseMs": number(s.lease_ms),
            "lastSyncAt": opt(s.last_sync_at),
            "policyIssuedAt": opt(s.policy_issued_at),
            "safeMode": s.safe_mode,
            "suspendedUntil": opt(s.suspended_until),
            "failures": s.failures,
            "nextPulseAt": opt(s.next_pulse_at),
            "nextPollAt": opt(s.next_poll_at),
            "stopped": s.stopped,
        })
        .to_string()
    }

    /// Applies one event (JSON text with `type`); returns the actions, in order.
    fn step(&mut self, text: &str) -> PyResult<Vec<&'static str>> {
        let v = parse_json(text)?;
        let now = f(&v, "now").unwrap_or(0.0);
        let random = f(&v, "random").unwrap_or(0.0);
        let flag = |key: &str| v.get(key).and_then(Value::as_bool).unwrap_or(false);
        let event = match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "start" => Event::Start { now, random },
            "pulse_started" => Event::PulseStarted { now },
            "pulse_done" => Event::PulseDone {
                now,
                delivered: flag("delivered"),
                random,
            },
            "poll_due" => Event::PollDue {
                now,
                authenticated: flag("authenticated"),
                random,
            },
            "poll_done" => Event::PollDone { now, random },
            "policy" => Event::Policy {
                now,
                source: if v.get("source").and_then(Value::as_str) == Some("poll") {
                    PolicySource::Poll
                } else {
                    PolicySource::Pulse
                },
                policy: lifecycle_policy(v.get("policy").unwrap_or(&Value::Null))?,
            },
            "not_modified" => Event::NotModified { now },
            "lease_check" => Event::LeaseCheck { now },
            "resume" => Event::Resume { now, random },
            "stop" => Event::Stop { now },
            other => return Err(PyValueError::new_err(format!("unknown lifecycle event {:?}", other))),
        };
        let (next, actions) = lc::step(&self.state, event);
        self.state = next;
        Ok(actions.into_iter().map(Action::as_str).collect())
    }

    /// `(resume, pulse, poll, lease_check)` due at `now`.
    fn due(&self, now: f64) -> (bool, bool, bool, bool) {
        let d = lc::due(&self.state, now);
        (d.resume, d.pulse, d.poll, d.lease_check)
    }

    fn next_wake_at(&self) -> Option<f64> {
        lc::next_wake_at(&self.state)
    }
}

/// The JWT's renewal rules as a state machine (events and state as JSON text).
#[pyclass(module = "waitstate._native")]
struct TokenLifecycle {
    state: TokenState,
}

#[pymethods]
impl TokenLifecycle {
    #[new]
    fn new() -> Self {
        TokenLifecycle {
            state: TokenState::default(),
        }
    }

    fn merge_state(&mut self, text: &str) -> PyResult<()> {
        let v = parse_json(text)?;
        if let Some(x) = f(&v, "expiresAt") {
            self.state.expires_at = x;
        }
        if let Some(x) = v.get("failures").and_then(Value::as_u64) {
            self.state.failures = x as u32;
        }
        if let Some(x) = v.get("refreshAt") {
            self.state.refresh_at = x.as_f64();
        }
        Ok(())
    }

    fn state(&self) -> String {
        json!({
            "expiresAt": number(self.state.expires_at),
            "failures": self.state.failures,
            "refreshAt": opt(self.state.refresh_at),
        })
        .to_string()
    }

    fn step(&mut self, text: &str) -> PyResult<()> {
        let v = parse_json(text)?;
        let now = f(&v, "now").unwrap_or(0.0);
        let event = match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "token_start" => TokenEvent::Start { now },
            "token_issued" => TokenEvent::Issued {
                now,
                expires_at: f(&v, "expiresAt").unwrap_or(0.0),
            },
            "token_failed" => TokenEvent::Failed {
                now,
                random: f(&v, "random").unwrap_or(0.0),
            },
            "token_rejected" => TokenEvent::Rejected { now },
            other => return Err(PyValueError::new_err(format!("unknown token event {:?}", other))),
        };
        self.state = lc::step_token(&self.state, event);
        Ok(())
    }

    fn usable(&self, now: f64) -> bool {
        lc::token_usable(&self.state, now)
    }

    fn due(&self, now: f64) -> bool {
        lc::token_due(&self.state, now)
    }
}

#[pymodule]
fn _native(_py: Python<'_>, m: &PyModule) -> PyResult<()> {
    m.add_class::<Engine>()?;
    m.add_class::<PureGate>()?;
    m.add_class::<Histogram>()?;
    m.add_class::<Lifecycle>()?;
    m.add_class::<TokenLifecycle>()?;
    m.add_function(wrap_pyfunction!(sign_pulse, m)?)?;
    m.add_function(wrap_pyfunction!(sign_token_exchange, m)?)?;
    m.add_function(wrap_pyfunction!(parse_policy, m)?)?;
    m.add_function(wrap_pyfunction!(policy_pacing, m)?)?;
    m.add_function(wrap_pyfunction!(round_ms, m)?)?;
    m.add_function(wrap_pyfunction!(pulse_delay_ms, m)?)?;
    m.add_function(wrap_pyfunction!(poll_delay_ms, m)?)?;
    m.add_function(wrap_pyfunction!(backoff_ms, m)?)?;
    m.add_function(wrap_pyfunction!(token_refresh_delay_ms, m)?)?;
    m.add_function(wrap_pyfunction!(token_retry_delay_ms, m)?)?;
    m.add_function(wrap_pyfunction!(classify_pulse_answer, m)?)?;
    m.add_function(wrap_pyfunction!(classify_poll_answer, m)?)?;
    m.add_function(wrap_pyfunction!(pulse_leaves_outbox, m)?)?;
    Ok(())
}
