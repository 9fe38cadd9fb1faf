//! The client (feature `runtime`): options, the background task that pulses,
//! reads the policy and exchanges the keys, driven by the lifecycle rules of
//! [`crate::lifecycle`] exactly as the Node SDK is (docs/client.md).
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

use crate::gate::{now_ms, Gate, GateResult, SafeModeStrategy};
use crate::http::{self, Answer};
use crate::lifecycle::{
    self, classify_poll_answer, classify_pulse_answer, pulse_leaves_outbox, step, step_token, token_due, token_usable, Action, Event,
    LifecyclePolicy, LifecycleState, PolicySource, PollOutcome, PulseOutcome, TokenEvent, TokenState, COUNTED_HEADER,
    DUPLICATE_INSTANCE_HEADER,
};
use crate::policy::{Policy, PolicyStatus};
use crate::push::{self, Credentials, PushConfig, PushHost, PushReport};
use crate::signing::{pulse_signature, token_exchange_signature};
use crate::telemetry::{build_pulses, PreparedPulse, PulseMeta, Rejected, Telemetry, PULSE_BODY_BUDGET};

pub(crate) const TOKEN_EXCHANGE_PATH: &str = "/v1/auth/token";
const MAX_ID_LENGTH: usize = 128;

/// Receives every background failure (see [`ErrorCode`]).
pub type ErrorCallback = Arc<dyn Fn(&WaitStateError) + Send + Sync>;

/// How [`WaitState::start`] is configured. Build it with struct update syntax:
///
/// ```
/// use waitstate::{Options, SafeModeStrategy};
/// let options = Options {
///     publish_key: "ws_pub_live_abc".into(),
///     secret_key: "ws_sec_live_xyz".into(),
///     base_url: "http://127.0.0.1:8787".into(),
///     site_id: Some("prod".into()),
///     safe_mode_strategy: SafeModeStrategy::FixedRps,
///     on_error: Some(std::sync::Arc::new(|e: &waitstate::WaitStateError| eprintln!("{}", e))),
///     ..Default::default()
/// };
/// assert_eq!(options.pulse_interval_secs, 20);
/// ```
#[derive(Clone)]
pub struct Options {
    /// Required. From the dashboard (`ws_pub_…`); identifies the organization.
    pub publish_key: String,
    /// Required. Signs pulses and the key exchange; never sent. Keep it in the environment.
    pub secret_key: String,
    /// The control plane, `http(s)://host[:port]`. Default: `WAITSTATE_BASE_URL`, else
    /// `https://api.waitstate.io`.
    pub base_url: String,
    /// The site: one aggregator, policy and health per site. `None`: the organization's id.
    pub site_id: Option<String>,
    /// This process's identifier, the key of pulse idempotency: unique per running process.
    /// `None`: a random UUID.
    pub instance_id: Option<String>,
    /// Seconds between pulses until the control plane's policy names its `pulseInterval`
    /// (which then governs). 1–3600. Default 20.
    pub pulse_interval_secs: u64,
    /// The longest wait between two policy reads (JWT + `GET /v1/policy`), seconds; the
    /// lifecycle reads every 2 pulse intervals within [1 s, 60 s], never less often than
    /// this. At least 1. Default 30.
    pub sync_interval_secs: u64,
    /// Calls per second per instance under `fixed_rps` once the lease has expired. Default 50.
    pub safe_mode_max_rps: u64,
    /// What the gate does once the lease has expired: `Open` (default), `FixedRps`, `LastPolicy`.
    pub safe_mode_strategy: SafeModeStrategy,
    /// Deadline of each request to the control plane, ms. 1–600000. Default 10000.
    pub request_timeout_ms: u64,
    /// Receives every background failure. `None`: a line on stderr, at most once a minute per code.
    pub on_error: Option<ErrorCallback>,
    /// Receive policy changes pushed by the control plane as they happen (in addition to
    /// pulses and reads). Default true.
    pub push: bool,
    /// Sub-second pulse interval before the first policy (overrides `pulse_interval_secs`),
    /// 100–3600000 ms; for tests and local control planes.
    pub pulse_interval_ms: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            publish_key: String::new(),
            secret_key: String::new(),
            base_url: std::env::var("WAITSTATE_BASE_URL").unwrap_or_else(|_| "https://api.waitstate.io".to_string()),
            site_id: None,
            instance_id: None,
            pulse_interval_secs: 20,
            sync_interval_secs: 30,
            safe_mode_max_rps: 50,
            safe_mode_strategy: SafeModeStrategy::Open,
            request_timeout_ms: 10_000,
            on_error: None,
            push: true,
            pulse_interval_ms: None,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("publish_key", &self.publish_key)
            .field("secret_key", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("site_id", &self.site_id)
            .field("instance_id", &self.instance_id)
            .field("pulse_interval_secs", &self.pulse_interval_secs)
            .field("sync_interval_secs", &self.sync_interval_secs)
            .field("safe_mode_max_rps", &self.safe_mode_max_rps)
            .field("safe_mode_strategy", &self.safe_mode_strategy)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("on_error", &self.on_error.as_ref().map(|_| "<callback>"))
            .field("push", &self.push)
            .field("pulse_interval_ms", &self.pulse_interval_ms)
            .finish()
    }
}

/// What [`WaitState::start`] refuses. Bad options are the only error it returns:
/// everything after start goes to `on_error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// `INVALID_OPTIONS`: `option` names the field at fault.
    InvalidOptions { option: &'static str, message: String },
    /// `start` was called outside a tokio runtime.
    NoRuntime,
}

impl Error {
    /// `"INVALID_OPTIONS"`, `"NO_RUNTIME"`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidOptions { .. } => "INVALID_OPTIONS",
            Error::NoRuntime => "NO_RUNTIME",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidOptions { option, message } => write!(f, "INVALID_OPTIONS: {}: {}", option, message),
            Error::NoRuntime => write!(f, "NO_RUNTIME: WaitState::start must run inside a tokio runtime"),
        }
    }
}

impl std::error::Error for Error {}

/// The codes of background failures, as in the other SDKs (docs/client.md, "Errors").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    AuthFailed,
    PulseFailed,
    PulseRejected,
    PolicyFetchFailed,
    InvalidPolicy,
    SafeMode,
    InvalidValue,
    InvalidMetricName,
    TooManyMetrics,
    ShutdownFlushFailed,
    DuplicateInstance,
    /// The push socket failed or was refused; it reconnects with backoff (pulses go on regardless).
    PushFailed,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AuthFailed => "AUTH_FAILED",
            ErrorCode::PulseFailed => "PULSE_FAILED",
            ErrorCode::PulseRejected => "PULSE_REJECTED",
            ErrorCode::PolicyFetchFailed => "POLICY_FETCH_FAILED",
            ErrorCode::InvalidPolicy => "INVALID_POLICY",
            ErrorCode::SafeMode => "SAFE_MODE",
            ErrorCode::InvalidValue => "INVALID_VALUE",
            ErrorCode::InvalidMetricName => "INVALID_METRIC_NAME",
            ErrorCode::TooManyMetrics => "TOO_MANY_METRICS",
            ErrorCode::ShutdownFlushFailed => "SHUTDOWN_FLUSH_FAILED",
            ErrorCode::DuplicateInstance => "DUPLICATE_INSTANCE",
            ErrorCode::PushFailed => "PUSH_FAILED",
        }
    }
}

/// A background failure, as `on_error` receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitStateError {
    pub code: ErrorCode,
    /// The HTTP status, 0 without one.
    pub status: u16,
    pub message: String,
}

impl fmt::Display for WaitStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for WaitStateError {}

/// What [`WaitState::status`] shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub instance_id: String,
    /// A policy has been installed or confirmed at least once.
    pub synced: bool,
    /// A usable JWT is held.
    pub authenticated: bool,
    pub last_sync_at: Option<f64>,
    pub policy_version: Option<u64>,
    pub policy_status: Option<PolicyStatus>,
    pub safe_mode: bool,
    pub suspended_until: Option<f64>,
    pub consecutive_failures: u32,
    pub pending_pulses: usize,
    pub pulse_interval_ms: f64,
    pub shut_down: bool,
}

struct Config {
    publish_key: String,
    secret_key: String,
    base_url: String,
    site_id: Option<String>,
    instance_id: String,
    pulse_interval_ms: f64,
    sync_interval_ms: f64,
    safe_mode_max_rps: u64,
    strategy: SafeModeStrategy,
    request_timeout_ms: u64,
    push: bool,
}

struct Shared {
    gate: Gate,
    telemetry: Mutex<Telemetry>,
    config: Config,
    on_error: Option<ErrorCallback>,
    /// When the default reporter last printed each code.
    last_printed: Mutex<HashMap<ErrorCode, Instant>>,
    status: Mutex<Status>,
    stop: watch::Sender<bool>,
    done: watch::Receiver<bool>,
    /// The token of each exchange, for the push task.
    credentials: watch::Sender<Option<Credentials>>,
    /// The ETag of the last pushed policy installed, for the next read's `If-None-Match`.
    pushed_etag: Mutex<Option<String>>,
    /// The policy in force came by push (no pulse or read has installed one since).
    pushed_in_force: AtomicBool,
}

impl PushHost for Shared {
    fn install_pushed(&self, policy: Policy, etag: Option<String>) -> bool {
        let installed = self.gate.install_pushed(policy);
        if installed {
            *lock(&self.pushed_etag) = etag;
            self.pushed_in_force.store(true, Ordering::SeqCst);
        }
        installed
    }

    fn report(&self, kind: PushReport, status: u16, message: String) {
        let code = match kind {
            PushReport::InvalidPolicy => ErrorCode::InvalidPolicy,
            PushReport::Failed => ErrorCode::PushFailed,
            PushReport::AuthFailed => ErrorCode::AuthFailed,
        };
        Shared::report(self, code, status, message);
    }
}

impl Shared {
    fn report(&self, code: ErrorCode, status: u16, message: String) {
        let error = WaitStateError { code, status, message };
        match &self.on_error {
            // A callback that panics must not take the background task down.
            Some(callback) => drop(catch_unwind(AssertUnwindSafe(|| callback(&error)))),
            None => {
                let mut printed = lock(&self.last_printed);
                let due = printed.get(&code).map_or(true, |at| at.elapsed() >= Duration::from_secs(60));
                if due {
                    printed.insert(code, Instant::now());
                    eprintln!("[waitstate] {}", error);
                }
            }
        }
    }

    fn rejected(&self, r: Rejected) {
        match r {
            Rejected::InvalidValue(m) => self.report(ErrorCode::InvalidValue, 0, m),
            Rejected::InvalidMetricName(m) => self.report(ErrorCode::InvalidMetricName, 0, m),
            Rejected::TooManyMetrics(m) => self.report(ErrorCode::TooManyMetrics, 0, m),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The WaitState client: the gate, telemetry, and the background task that
/// keeps the policy in sync. Cheap to clone (an `Arc`): every clone is the same
/// client, so an HTTP server's handlers and a binding can each hold one.
#[derive(Clone)]
pub struct WaitState {
    shared: Arc<Shared>,
}

impl fmt::Debug for WaitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitState").field("status", &self.status()).finish()
    }
}

fn invalid(option: &'static str, message: impl Into<String>) -> Error {
    Error::InvalidOptions {
        option,
        message: message.into(),
    }
}

/// Identifiers: 1–128 characters, letters, digits, `.`, `_`, `:`, `-`, a letter or digit first.
fn is_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_ID_LENGTH
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
}

fn random_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{:02x}", x)).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn validate(options: Options) -> Result<(Config, Option<ErrorCallback>), Error> {
    if options.publish_key.trim().is_empty() {
        return Err(invalid("publish_key", "required: the publish key from the dashboard (ws_pub_…)"));
    }
    if options.secret_key.is_empty() {
        return Err(invalid("secret_key", "required: the secret key from the dashboard (ws_sec_…)"));
    }
    let base = options.base_url.trim_end_matches('/').to_string();
    match reqwest::Url::parse(&base) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some() => {}
        _ => {
            return Err(invalid(
                "base_url",
                format!("must be an http(s) URL such as http://127.0.0.1:8787, got {:?}", options.base_url),
            ))
        }
    }
    for (name, value) in [("site_id", &options.site_id), ("instance_id", &options.instance_id)] {
        if let Some(v) = value {
            if !is_identifier(v) {
                return Err(invalid(
                    name,
                    format!(
                        "1 to 128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit; got {:?}",
                        v
                    ),
                ));
            }
        }
    }
    let pulse_interval_ms = match options.pulse_interval_ms {
        Some(ms) if (100..=3_600_000).contains(&ms) => ms,
        Some(ms) => return Err(invalid("pulse_interval_ms", format!("must be 100 to 3600000 ms, got {}", ms))),
        None if (1..=3600).contains(&options.pulse_interval_secs) => options.pulse_interval_secs * 1000,
        None => {
            return Err(invalid(
                "pulse_interval_secs",
                format!("must be 1 to 3600 seconds, got {}", options.pulse_interval_secs),
            ))
        }
    };
    if !(1..=86_400).contains(&options.sync_interval_secs) {
        return Err(invalid(
            "sync_interval_secs",
            format!("must be 1 to 86400 seconds, got {}", options.sync_interval_secs),
        ));
    }
    if options.safe_mode_max_rps > 1_000_000_000 {
        return Err(invalid(
            "safe_mode_max_rps",
            format!("must be at most 1000000000, got {}", options.safe_mode_max_rps),
        ));
    }
    if !(1..=600_000).contains(&options.request_timeout_ms) {
        return Err(invalid(
            "request_timeout_ms",
            format!("must be 1 to 600000 ms, got {}", options.request_timeout_ms),
        ));
    }
    let config = Config {
        publish_key: options.publish_key,
        secret_key: options.secret_key,
        base_url: base,
        site_id: options.site_id,
        instance_id: options.instance_id.unwrap_or_else(random_uuid),
        pulse_interval_ms: pulse_interval_ms as f64,
        sync_interval_ms: options.sync_interval_secs as f64 * 1000.0,
        safe_mode_max_rps: options.safe_mode_max_rps,
        strategy: options.safe_mode_strategy,
        request_timeout_ms: options.request_timeout_ms,
        push: options.push,
    };
    Ok((config, options.on_error))
}

impl WaitState {
    /// Validates the options and starts the background task (key exchange and
    /// the first pulse at once). Returns at once: until the first policy
    /// arrives every call is allowed. Must be called inside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use waitstate::{Options, WaitState};
    /// let err = WaitState::start(Options { publish_key: "ws_pub_x".into(), ..Default::default() })
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "INVALID_OPTIONS: secret_key: required: the secret key from the dashboard (ws_sec_…)");
    /// # }
    /// ```
    pub async fn start(options: Options) -> Result<WaitState, Error> {
        let (config, on_error) = validate(options)?;
        let handle = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let (stop, stop_rx) = watch::channel(false);
        let (done_tx, done) = watch::channel(false);
        let status = Status {
            instance_id: config.instance_id.clone(),
            synced: false,
            authenticated: false,
            last_sync_at: None,
            policy_version: None,
            policy_status: None,
            safe_mode: false,
            suspended_until: None,
            consecutive_failures: 0,
            pending_pulses: 0,
            pulse_interval_ms: config.pulse_interval_ms,
            shut_down: false,
        };
        let shared = Arc::new(Shared {
            gate: Gate::new(config.strategy, config.safe_mode_max_rps as f64),
            telemetry: Mutex::new(Telemetry::default()),
            config,
            on_error,
            last_printed: Mutex::new(HashMap::new()),
            status: Mutex::new(status),
            stop,
            done,
            credentials: watch::channel(None).0,
            pushed_etag: Mutex::new(None),
            pushed_in_force: AtomicBool::new(false),
        });
        let push = if shared.config.push {
            let c = &shared.config;
            let config = PushConfig {
                base_url: c.base_url.clone(),
                site_id: c.site_id.clone(),
                publish_key: c.publish_key.clone(),
                secret_key: c.secret_key.clone(),
                request_timeout_ms: c.request_timeout_ms,
                keepalive: push::KEEPALIVE,
            };
            let host: Arc<dyn PushHost> = shared.clone();
            Some(handle.spawn(push::run(host, config, shared.credentials.subscribe(), stop_rx.clone())))
        } else {
            None
        };
        let driver = Driver::new(shared.clone(), stop_rx);
        handle.spawn(async move {
            driver.run().await;
            // Shutdown returns once the push socket is closed too.
            if let Some(push) = push {
                let _ = push.await;
            }
            let _ = done_tx.send(true);
        });
        Ok(WaitState { shared })
    }

    /// Decides a call of `weight` units for `tag` from the policy in force, and
    /// counts it. Synchronous, in memory, never panics, no allocation once the
    /// tag has been seen.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let ws = waitstate::WaitState::start(waitstate::Options {
    /// #     publish_key: "ws_pub_x".into(), secret_key: "s".into(), base_url: "http://127.0.0.1:9".into(),
    /// #     on_error: Some(std::sync::Arc::new(|_: &waitstate::WaitStateError| {})), ..Default::default()
    /// # }).await.unwrap();
    /// let r = ws.gate("free", 1);
    /// assert!(r.allowed); // until the first policy, every call is allowed
    /// assert_eq!(r.reason.as_str(), "allowed");
    /// # }
    /// ```
    #[inline]
    pub fn gate(&self, tag: &str, weight: impl Into<f64>) -> GateResult {
        self.shared.gate.gate(tag, weight)
    }

    /// The gate itself (to share with code that only gates).
    pub fn local_gate(&self) -> &Gate {
        &self.shared.gate
    }

    /// Records one latency observation in ms for the tag (`None`: `__default__`).
    /// A value that is negative, NaN or infinite is dropped and reported
    /// (`INVALID_VALUE`); returns whether it was recorded.
    pub fn report_latency(&self, ms: f64, tag: Option<&str>) -> bool {
        let r = lock(&self.shared.telemetry).report_latency(ms, tag);
        r.map_err(|e| self.shared.rejected(e)).is_ok()
    }

    /// Counts one error for the tag.
    pub fn report_error(&self, tag: Option<&str>) {
        lock(&self.shared.telemetry).report_error(tag);
    }

    /// Records a custom metric value (min/max/sum/count per pulse). Names:
    /// lowercase letters, digits and `_`, a letter first, at most 63, not a
    /// built-in name; at most 64 per tag and pulse. A bad name or value is
    /// dropped and reported; returns whether it was recorded.
    pub fn report(&self, metric: &str, value: f64, tag: Option<&str>) -> bool {
        let r = lock(&self.shared.telemetry).report(metric, value, tag);
        r.map_err(|e| self.shared.rejected(e)).is_ok()
    }

    /// Starts timing a request; [`Timer::stop`] (or dropping the timer) records its latency once.
    pub fn start_timer(&self, tag: Option<&str>) -> Timer {
        Timer {
            ws: self.clone(),
            tag: tag.map(str::to_string),
            started: Instant::now(),
            elapsed_ms: None,
        }
    }

    /// Installs a policy now, as if the control plane had sent it (the lease
    /// restarts). The next policy from the control plane replaces it.
    pub fn set_policy(&self, policy: Policy) {
        self.shared.gate.set_policy(policy);
    }

    /// Where the client stands: sync, lease, safe mode, pending pulses.
    pub fn status(&self) -> Status {
        let mut s = lock(&self.shared.status).clone();
        if let Some(p) = self.shared.gate.policy() {
            s.policy_version = Some(p.version());
            s.policy_status = Some(p.status());
        }
        s
    }

    /// The instance id pulses carry.
    pub fn instance_id(&self) -> &str {
        &self.shared.config.instance_id
    }

    /// Stops the background task (a pulse on the wire is abandoned and stays in
    /// the outbox), then sends what was counted since the last pulse and the
    /// outbox once, each request within `request_timeout_ms`. If that fails,
    /// `SHUTDOWN_FLUSH_FAILED` says how many calls went unreported. Every clone
    /// may call it; all return once the final pulse is done. `gate()` keeps
    /// answering afterwards from the last policy.
    pub async fn shutdown(&self) {
        let _ = self.shared.stop.send(true);
        let mut done = self.shared.done.clone();
        while !*done.borrow() {
            if done.changed().await.is_err() {
                break;
            }
        }
    }
}

/// Times one request; see [`WaitState::start_timer`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let ws = waitstate::WaitState::start(waitstate::Options {
/// #     publish_key: "ws_pub_x".into(), secret_key: "s".into(), base_url: "http://127.0.0.1:9".into(),
/// #     on_error: Some(std::sync::Arc::new(|_: &waitstate::WaitStateError| {})), ..Default::default()
/// # }).await.unwrap();
/// let timer = ws.start_timer(Some("search"));
/// // … handle the request …
/// let ms = timer.stop();
/// assert!(ms >= 0.0);
/// # }
/// ```
pub struct Timer {
    ws: WaitState,
    tag: Option<String>,
    started: Instant,
    elapsed_ms: Option<f64>,
}

impl Timer {
    /// Records the latency since start (once) and returns it, ms.
    pub fn stop(mut self) -> f64 {
        self.record()
    }

    fn record(&mut self) -> f64 {
        if let Some(ms) = self.elapsed_ms {
            return ms;
        }
        let ms = self.started.elapsed().as_secs_f64() * 1000.0;
        self.elapsed_ms = Some(ms);
        self.ws.report_latency(ms, self.tag.as_deref());
        ms
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.record();
    }
}

// ---------------------------------------------------------------- the background task

/// A request cut short by shutdown.
struct Stopped;

struct Driver {
    shared: Arc<Shared>,
    http: reqwest::Client,
    life: LifecycleState,
    token: TokenState,
    jwt: Option<String>,
    org_id: Option<String>,
    etag: Option<String>,
    outbox: VecDeque<PreparedPulse>,
    last_ts: u64,
    stop: watch::Receiver<bool>,
}

fn earliest(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

impl Driver {
    fn new(shared: Arc<Shared>, stop: watch::Receiver<bool>) -> Driver {
        let life = LifecycleState::new(shared.config.pulse_interval_ms);
        Driver {
            http: http::client(shared.config.request_timeout_ms),
            shared,
            life,
            token: TokenState::default(),
            jwt: None,
            org_id: None,
            etag: None,
            outbox: VecDeque::new(),
            last_ts: 0,
            stop,
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Feeds an event to the lifecycle rules, keeps the state they return, and publishes it.
    fn advance(&mut self, event: Event) -> Vec<Action> {
        let actions = self.step_quietly(event);
        self.publish();
        actions
    }

    /// `advance` without publishing: for events whose actions change the gate, so that
    /// `status()` never reports a sync the gate does not answer from yet.
    fn step_quietly(&mut self, event: Event) -> Vec<Action> {
        let (state, actions) = step(&self.life, event);
        self.life = state;
        // `sync_interval_secs` bounds the wait between reads from above.
        if let (Some(at), false) = (self.life.next_poll_at, self.life.stopped) {
            let latest = now_ms() + self.shared.config.sync_interval_ms;
            if at > latest {
                self.life.next_poll_at = Some(latest);
            }
        }
        actions
    }

    fn publish(&self) {
        let mut s = lock(&self.shared.status);
        s.synced = self.life.last_sync_at.is_some();
        s.authenticated = self.jwt.is_some() && token_usable(&self.token, now_ms());
        s.last_sync_at = self.life.last_sync_at;
        s.safe_mode = self.life.safe_mode;
        s.suspended_until = self.life.suspended_until;
        s.consecutive_failures = self.life.failures;
        s.pending_pulses = self.outbox.len();
        s.pulse_interval_ms = self.life.interval_ms;
        s.shut_down = self.life.stopped;
    }

    /// Runs `fut` unless shutdown comes first.
    async fn or_stop<F: std::future::Future>(&mut self, fut: F) -> Result<F::Output, Stopped> {
        if self.stopping() {
            return Err(Stopped);
        }
        let mut stop = self.stop.clone();
        tokio::select! {
            out = fut => Ok(out),
            _ = async { while stop.changed().await.is_ok() { if *stop.borrow() { break; } } } => Err(Stopped),
        }
    }

    async fn run(mut self) {
        let now = now_ms();
        self.token = step_token(&self.token, TokenEvent::Start { now });
        self.advance(Event::Start {
            now,
            random: rand::random(),
        });
        while !self.stopping() {
            let now = now_ms();
            if token_due(&self.token, now) {
                if self.exchange().await.is_err() {
                    break;
                }
                continue;
            }
            let due = lifecycle::due(&self.life, now);
            if due.resume {
                self.advance(Event::Resume {
                    now,
                    random: rand::random(),
                });
                continue;
            }
            if due.lease_check {
                if self.advance(Event::LeaseCheck { now }).contains(&Action::SafeModeEntered) {
                    self.safe_mode_entered();
                }
                continue;
            }
            if due.pulse {
                if self.pulse_round().await.is_err() {
                    break;
                }
                continue;
            }
            if due.poll {
                if self.poll().await.is_err() {
                    break;
                }
                continue;
            }
            let wake = earliest(lifecycle::next_wake_at(&self.life), self.token.refresh_at);
            let sleep = match wake {
                Some(at) => Duration::from_millis((at - now).clamp(1.0, 86_400_000.0) as u64),
                None => Duration::from_secs(86_400),
            };
            if self.or_stop(tokio::time::sleep(sleep)).await.is_err() {
                break;
            }
        }
        self.final_flush().await;
    }

    fn safe_mode_entered(&self) {
        let c = &self.shared.config;
        let how = match c.strategy {
            SafeModeStrategy::FixedRps => format!("at most {} calls/s are allowed", c.safe_mode_max_rps),
            SafeModeStrategy::LastPolicy => "the last policy is enforced as it is".to_string(),
            SafeModeStrategy::Open => "every call is allowed".to_string(),
        };
        let strategy = match c.strategy {
            SafeModeStrategy::FixedRps => "fixed_rps",
            SafeModeStrategy::LastPolicy => "last_policy",
            SafeModeStrategy::Open => "open",
        };
        let message = format!(
            "no sync with {} for {} s: the lease expired and safe mode ({}) is on: {}, reason lease_expired, until the next successful sync",
            c.base_url,
            self.life.lease_ms / 1000.0,
            strategy,
            how
        );
        eprintln!("[WAITSTATE-FATAL] {}", message);
        self.shared.report(ErrorCode::SafeMode, 0, message);
    }

    // ------------------------------------------------------------ the JWT

    async fn exchange(&mut self) -> Result<(), Stopped> {
        let c = &self.shared.config;
        let ts = format!("{}", now_ms() as u64);
        let signature = token_exchange_signature("", &ts, &c.secret_key);
        let request = self
            .http
            .post(format!("{}{}", c.base_url, TOKEN_EXCHANGE_PATH))
            .header("x-waitstate-id", &c.publish_key)
            .header("x-waitstate-timestamp", &ts)
            .header("x-waitstate-signature", signature);
        let base = c.base_url.clone();
        let outcome = self.or_stop(http::send(request, "token exchange", &base)).await?;
        let now = now_ms();
        let error = match outcome {
            Err(reason) => (0, format!("token exchange failed: {}", reason)),
            Ok(answer) if answer.status != 200 => (answer.status, format!("token exchange refused: {}", answer.describe())),
            Ok(answer) => {
                let body: Value = serde_json::from_str(&answer.text).unwrap_or(Value::Null);
                match (body["token"].as_str(), body["orgId"].as_str(), body["expiresAt"].as_f64()) {
                    (Some(token), Some(org), Some(expires_at)) if expires_at.is_finite() => {
                        self.jwt = Some(token.to_string());
                        self.org_id = Some(org.to_string());
                        self.shared.credentials.send_replace(Some(Credentials {
                            token: token.to_string(),
                            org_id: org.to_string(),
                            expires_at,
                        }));
                        self.token = step_token(&self.token, TokenEvent::Issued { now, expires_at });
                        self.publish();
                        return Ok(());
                    }
                    _ => (200, "token exchange answered without token, expiresAt and orgId".to_string()),
                }
            }
        };
        self.token = step_token(
            &self.token,
            TokenEvent::Failed {
                now,
                random: rand::random(),
            },
        );
        self.shared.report(ErrorCode::AuthFailed, error.0, error.1);
        Ok(())
    }

    // ------------------------------------------------------------ pulses

    /// Takes the gate counts and telemetry since the last pulse into pulse bodies with fresh, increasing `ts`.
    fn prepare(&mut self) -> Vec<PreparedPulse> {
        let counts = self.shared.gate.take_counts();
        let telemetry = lock(&self.shared.telemetry).take();
        let c = &self.shared.config;
        let ts = (now_ms() as u64).max(self.last_ts + 1);
        let meta = PulseMeta {
            instance_id: &c.instance_id,
            site_id: c.site_id.as_deref(),
            ts,
            prev_ts: if self.last_ts > 0 { Some(self.last_ts) } else { None },
        };
        let pulses = build_pulses(&counts, &telemetry, &meta, PULSE_BODY_BUDGET);
        self.last_ts = ts + pulses.len() as u64 - 1;
        pulses
    }

    async fn pulse_round(&mut self) -> Result<(), Stopped> {
        self.advance(Event::PulseStarted { now: now_ms() });
        if self.outbox.is_empty() {
            let pulses = self.prepare();
            self.outbox.extend(pulses);
        }
        while let Some(pulse) = self.outbox.front().cloned() {
            let outcome = self.send(&pulse, true).await?;
            if !pulse_leaves_outbox(outcome) {
                break;
            }
            self.outbox.pop_front();
        }
        let delivered = self.outbox.is_empty();
        self.advance(Event::PulseDone {
            now: now_ms(),
            delivered,
            random: rand::random(),
        });
        Ok(())
    }

    async fn send(&mut self, pulse: &PreparedPulse, abortable: bool) -> Result<PulseOutcome, Stopped> {
        let c = &self.shared.config;
        let ts = format!("{}", now_ms() as u64);
        let signature = pulse_signature(&pulse.body, &ts, &c.secret_key);
        let request = self
            .http
            .post(format!("{}/v1/pulse", c.base_url))
            .header("content-type", "application/json")
            .header("x-waitstate-id", &c.publish_key)
            .header("x-waitstate-timestamp", &ts)
            .header("x-waitstate-signature", signature)
            .body(pulse.body.clone());
        let base = c.base_url.clone();
        let outcome = if abortable {
            self.or_stop(http::send(request, "pulse", &base)).await?
        } else {
            http::send(request, "pulse", &base).await
        };
        let answer = match outcome {
            Ok(a) => a,
            Err(reason) => {
                self.shared.report(
                    ErrorCode::PulseFailed,
                    0,
                    format!("pulse not delivered ({}); kept for the next attempt", reason),
                );
                return Ok(PulseOutcome::Retry);
            }
        };
        let success = (200..300).contains(&answer.status);
        let policy = if success { self.read_policy(&answer, "pulse") } else { None };
        if success && answer.header(DUPLICATE_INSTANCE_HEADER) == Some("true") {
            let counted = answer.header(COUNTED_HEADER) != Some("false");
            let what = if counted {
                "this pulse was counted".to_string()
            } else {
                format!(
                    "this pulse ({} calls) was not counted: it may repeat one counted long ago",
                    pulse.usage_delta
                )
            };
            self.shared.report(
                ErrorCode::DuplicateInstance,
                answer.status,
                format!(
                    "another process pulses as instance {:?}; {}. Give each process its own instance_id",
                    self.shared.config.instance_id, what
                ),
            );
        }
        let outcome = classify_pulse_answer(Some(answer.status), answer.headers.contains_key(COUNTED_HEADER), policy.is_some());
        match outcome {
            PulseOutcome::Policy => {
                if let Some((p, why)) = policy {
                    self.adopt(p, answer.header("etag"), PolicySource::Pulse, why);
                }
            }
            PulseOutcome::Counted | PulseOutcome::NotDelivered => {}
            PulseOutcome::Rejected => self.shared.report(
                ErrorCode::PulseRejected,
                answer.status,
                format!(
                    "the control plane refused a pulse ({}); its {} calls cannot be delivered and were dropped",
                    answer.describe(),
                    pulse.usage_delta
                ),
            ),
            PulseOutcome::Retry => self.shared.report(
                ErrorCode::PulseFailed,
                answer.status,
                format!("pulse not accepted ({}); kept for the next attempt", answer.describe()),
            ),
        }
        Ok(outcome)
    }

    /// A 2xx answer's policy: valid, or a kill-only one from an invalid policy that says
    /// `killSignal: true` (reported). `None` (reported) when there is neither.
    fn read_policy(&self, answer: &Answer, source: &str) -> Option<(Policy, Option<String>)> {
        let value: Option<Value> = serde_json::from_str(&answer.text).ok();
        let parsed = match &value {
            Some(v) => Policy::from_value(v),
            None => Err(crate::policy::PolicyError {
                path: "(root)".into(),
                message: "not JSON",
            }),
        };
        match parsed {
            Ok(p) => Some((p, None)),
            Err(why) => match value.as_ref().and_then(Policy::kill_switch) {
                Some(kill) => Some((
                    kill,
                    Some(format!(
                        "a policy from the {} fails the schema ({}) but carries the kill switch, which is honoured: every call is denied (kill_signal) until a valid policy arrives",
                        source, why
                    )),
                )),
                None => {
                    self.shared.report(
                        ErrorCode::InvalidPolicy,
                        answer.status,
                        format!(
                            "ignored a policy from the {} that fails the schema ({}); the last good policy stays",
                            source, why
                        ),
                    );
                    None
                }
            },
        }
    }

    /// A valid policy arrived: the rules say whether it is installed or only confirms the one in force.
    fn adopt(&mut self, policy: Policy, etag: Option<&str>, source: PolicySource, kill_note: Option<String>) {
        if let Some(note) = kill_note {
            self.shared.report(ErrorCode::InvalidPolicy, 200, note);
        }
        let now = now_ms();
        if self.shared.pushed_in_force.load(Ordering::SeqCst) && push::older_than(&policy, self.shared.gate.policy().as_deref()) {
            // An answer issued before the push that overtook it: a sync all the same, but versions never go back.
            for action in self.advance(Event::NotModified { now }) {
                match action {
                    Action::Confirm => self.shared.gate.confirm_at(now),
                    Action::SafeModeEnded => self.safe_mode_ended(),
                    _ => {}
                }
            }
            return;
        }
        self.shared.pushed_in_force.store(false, Ordering::SeqCst);
        let event = Event::Policy {
            now,
            source,
            policy: LifecyclePolicy::from(&policy.wire),
        };
        let actions = self.step_quietly(event);
        let mut policy = Some(policy);
        for action in actions {
            match action {
                Action::Install => {
                    if let Some(p) = policy.take() {
                        self.etag = etag.map(str::to_string);
                        self.shared.gate.set_policy_at(p, now);
                    }
                }
                Action::Confirm => self.shared.gate.confirm_at(now),
                Action::SafeModeEnded => self.safe_mode_ended(),
                _ => {}
            }
        }
        self.publish();
    }

    fn safe_mode_ended(&self) {
        let version = self
            .shared
            .gate
            .policy()
            .map(|p| p.version().to_string())
            .unwrap_or_else(|| "?".into());
        eprintln!(
            "[waitstate] control plane reachable again: safe mode over, policy v{} in force",
            version
        );
    }

    // ------------------------------------------------------------ policy reads

    async fn poll(&mut self) -> Result<(), Stopped> {
        let now = now_ms();
        let authenticated = self.jwt.is_some() && self.org_id.is_some() && token_usable(&self.token, now);
        let actions = self.advance(Event::PollDue {
            now,
            authenticated,
            random: rand::random(),
        });
        if !actions.contains(&Action::Poll) {
            return Ok(());
        }
        let result = self.read().await;
        self.advance(Event::PollDone {
            now: now_ms(),
            random: rand::random(),
        });
        result
    }

    async fn read(&mut self) -> Result<(), Stopped> {
        let (jwt, org) = match (&self.jwt, &self.org_id) {
            (Some(j), Some(o)) => (j.clone(), o.clone()),
            _ => return Ok(()),
        };
        let c = &self.shared.config;
        let mut url = match reqwest::Url::parse(&format!("{}/v1/policy/", c.base_url)) {
            Ok(u) => u,
            Err(_) => return Ok(()),
        };
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push(&org);
        }
        if let Some(site) = &c.site_id {
            url.query_pairs_mut().append_pair("siteId", site);
        }
        let mut request = self.http.get(url).bearer_auth(jwt);
        if let Some(pushed) = lock(&self.shared.pushed_etag).take() {
            self.etag = Some(pushed);
        }
        if let Some(etag) = &self.etag {
            request = request.header("if-none-match", etag);
        }
        let base = c.base_url.clone();
        let outcome = self.or_stop(http::send(request, "policy read", &base)).await?;
        let answer = match outcome {
            Ok(a) => a,
            Err(reason) => {
                self.shared
                    .report(ErrorCode::PolicyFetchFailed, 0, format!("policy read failed ({})", reason));
                return Ok(());
            }
        };
        let policy = if answer.status == 200 {
            self.read_policy(&answer, "poll")
        } else {
            None
        };
        match classify_poll_answer(Some(answer.status), policy.is_some()) {
            PollOutcome::NotModified => {
                let now = now_ms();
                for action in self.step_quietly(Event::NotModified { now }) {
                    match action {
                        Action::Confirm => self.shared.gate.confirm_at(now),
                        Action::SafeModeEnded => self.safe_mode_ended(),
                        _ => {}
                    }
                }
                self.publish();
            }
            PollOutcome::Policy => {
                if let Some((p, why)) = policy {
                    self.adopt(p, answer.header("etag"), PolicySource::Poll, why);
                }
            }
            PollOutcome::InvalidPolicy => {}
            outcome @ (PollOutcome::Unauthorized | PollOutcome::Failed) => {
                if outcome == PollOutcome::Unauthorized {
                    self.jwt = None;
                    self.token = step_token(&self.token, TokenEvent::Rejected { now: now_ms() });
                }
                self.shared.report(
                    ErrorCode::PolicyFetchFailed,
                    answer.status,
                    format!("policy read refused ({})", answer.describe()),
                );
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------ shutdown

    async fn final_flush(&mut self) {
        self.advance(Event::Stop { now: now_ms() });
        let pulses = self.prepare();
        self.outbox.extend(pulses);
        let pending: u64 = self.outbox.iter().map(|p| p.usage_delta).sum();
        let mut delivered = true;
        while let Some(pulse) = self.outbox.front().cloned() {
            // Not abortable: shutdown is what asked for this flush.
            let outcome = match self.send(&pulse, false).await {
                Ok(o) => o,
                Err(Stopped) => PulseOutcome::Retry,
            };
            if !pulse_leaves_outbox(outcome) {
                delivered = false;
                break;
            }
            self.outbox.pop_front();
        }
        self.publish();
        if !delivered {
            self.shared.report(
                ErrorCode::ShutdownFlushFailed,
                0,
                format!(
                    "the final pulse could not be delivered; {} calls of this instance were not reported",
                    pending
                ),
            );
        }
    }
}
