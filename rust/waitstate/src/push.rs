//! Push: the control plane's WebSocket that sends each new policy of the
//! site as it happens (docs/protocol.md, "Push"), so a kill switch or a fired
//! rule reaches this instance in milliseconds rather than at its next pulse.
//!
//! Push is an accelerator, never a dependency: pulses and reads go on exactly
//! as without it, and
//! - the socket opens after the first token exchange and reconnects after any
//!   close or error, 1 s doubling to 60 s with full jitter;
//! - a pushed policy is validated like any other (an invalid one is reported
//!   as `INVALID_POLICY` and ignored, unless it carries the kill switch), and
//!   installed only when its version is newer than the one in force;
//! - a push never restarts the lease nor ends safe mode: a half-open socket
//!   can look alive while pulses cannot get through, so only a pulse answer or
//!   a policy read counts as a sync. Its ETag is remembered for the next read;
//! - a close 4001 (`KEY_REVOKED`) or 4002 (`TOKEN_EXPIRED`), or an upgrade
//!   refused with 401, gets a new token before the next attempt;
//! - whatever ends a connection is reported (`PUSH_FAILED`, with the wait
//!   before the next attempt), as the Node SDK does.
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

use crate::http;
use crate::policy::Policy;
use crate::ws::{self, Message, Target, WsError};

/// The first reconnect waits up to this long; each failure in a row doubles it…
const BACKOFF_BASE_MS: f64 = 1000.0;
/// …up to this.
const BACKOFF_MAX_MS: f64 = 60_000.0;
/// A connection that stayed up this long was a success: the next failure starts the backoff again.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// The keep-alive: the text frame `ping` (the server auto-answers `pong`
/// without waking its Durable Object), no more often than the protocol allows.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(15);
/// Nothing heard for this many keep-alive periods (not even a `pong`): the
/// connection is dead, whatever TCP thinks.
const SILENT_PERIODS: u32 = 3;
/// A pushed message is one policy: 4096 tags of 128 characters fit with room to spare.
pub(crate) const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// How long a clean close may take at shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) const CLOSE_KEY_REVOKED: u16 = 4001;
pub(crate) const CLOSE_TOKEN_EXPIRED: u16 = 4002;

/// The SDK token, as the client's token exchange last issued it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Credentials {
    pub token: String,
    pub org_id: String,
    /// Epoch ms.
    pub expires_at: f64,
}

/// What went wrong, for the client's error callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PushReport {
    /// A pushed message or policy failed validation (`INVALID_POLICY`).
    InvalidPolicy,
    /// The connection failed, was refused or closed (`PUSH_FAILED`).
    Failed,
    /// A new token could not be had (`AUTH_FAILED`).
    AuthFailed,
}

/// What the push task needs from the client it accelerates.
pub(crate) trait PushHost: Send + Sync + 'static {
    /// Installs a validated policy if its version is newer than the one in
    /// force, without restarting the lease; remembers its ETag. Returns whether it did.
    fn install_pushed(&self, policy: Policy, etag: Option<String>) -> bool;
    fn report(&self, kind: PushReport, status: u16, message: String);
}

/// Where and how to subscribe.
#[derive(Clone, Debug)]
pub(crate) struct PushConfig {
    pub base_url: String,
    pub site_id: Option<String>,
    pub publish_key: String,
    pub secret_key: String,
    pub request_timeout_ms: u64,
    /// [`KEEPALIVE`]; shorter in tests.
    pub keepalive: Duration,
}

/// How a connection ended.
#[derive(Debug, PartialEq)]
enum Ended {
    /// Shutdown.
    Stopped,
    /// Reconnect with backoff; `new_token`: the token was refused (close
    /// 4001/4002, or 401 at the upgrade), so get a new one first. `status`
    /// (the HTTP status, or the close code) and `why` are reported.
    Retry { new_token: bool, status: u16, why: String },
}

fn retry(status: u16, why: impl Into<String>) -> Ended {
    Ended::Retry {
        new_token: false,
        status,
        why: why.into(),
    }
}

/// The wait before the `failures`-th reconnect in a row: full jitter over
/// `min(60 s, 1 s × 2^(failures − 1))`, `random` in `[0, 1)`.
pub(crate) fn reconnect_delay_ms(failures: u32, random: f64) -> f64 {
    let exp = failures.saturating_sub(1).min(16) as i32;
    BACKOFF_MAX_MS.min(BACKOFF_BASE_MS * 2f64.powi(exp)) * random
}

/// Whether `policy` (from a pulse or a read) was issued before `in_force`: a
/// lower version and no later `issuedAt`. Such an answer, overtaken by a push,
/// confirms the policy in force (a sync) rather than rolling it back.
pub(crate) fn older_than(policy: &Policy, in_force: Option<&Policy>) -> bool {
    let in_force = match in_force {
        Some(p) if policy.version() < p.version() => p,
        _ => return false,
    };
    match (policy.issued_at(), in_force.issued_at()) {
        (Some(a), Some(b)) => a <= b,
        _ => true,
    }
}

/// The subscribe URL: `GET {base}/v1/policy/{orgId}/subscribe?siteId=…`.
pub(crate) fn subscribe_url(base_url: &str, org_id: &str, site_id: Option<&str>) -> Option<reqwest::Url> {
    let mut url = reqwest::Url::parse(&format!("{}/v1/policy/", base_url.trim_end_matches('/'))).ok()?;
    {
        let mut segments = url.path_segments_mut().ok()?;
        segments.pop_if_empty().push(org_id).push("subscribe");
    }
    if let Some(site) = site_id {
        url.query_pairs_mut().append_pair("siteId", site);
    }
    Some(url)
}

/// The push task: runs until `stop` says true. `credentials` carries the
/// client's token; nothing is attempted before the first one.
pub(crate) async fn run(
    host: Arc<dyn PushHost>,
    config: PushConfig,
    mut credentials: watch::Receiver<Option<Credentials>>,
    mut stop: watch::Receiver<bool>,
) {
    let http = http::client(config.request_timeout_ms);
    let mut creds = loop {
        if *stop.borrow() {
            return;
        }
        if let Some(c) = credentials.borrow().clone() {
            break c;
        }
        tokio::select! {
            changed = credentials.changed() => if changed.is_err() { return },
            _ = stopped(&mut stop) => return,
        }
    };
    let mut failures: u32 = 0;
    loop {
        // The client renews its token before it expires: take the freshest.
        if let Some(latest) = credentials.borrow().clone() {
            if latest.expires_at > creds.expires_at {
                creds = latest;
            }
        }
        let began = Instant::now();
        let (new_token, status, why) = match connection(&*host, &config, &creds, &mut stop).await {
            Ended::Stopped => return,
            Ended::Retry { new_token, status, why } => (new_token, status, why),
        };
        failures = if began.elapsed() >= STABLE_AFTER {
            1
        } else {
            failures.saturating_add(1)
        };
        let delay = Duration::from_millis(reconnect_delay_ms(failures, rand::random()) as u64);
        host.report(
            PushReport::Failed,
            status,
            format!("{}; reconnecting in {:.1} s", why, delay.as_secs_f64()),
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped(&mut stop) => return,
        }
        if new_token {
            let latest = credentials.borrow().clone();
            match latest {
                // The client already holds a newer token than the refused one.
                Some(latest) if latest.token != creds.token && latest.expires_at > creds.expires_at => creds = latest,
                _ => match exchange(&http, &config).await {
                    Ok(fresh) => creds = fresh,
                    Err((status, message)) => host.report(PushReport::AuthFailed, status, message),
                },
            }
        }
    }
}

/// Resolves once `stop` says true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// One connection, from the upgrade to its end.
async fn connection(host: &dyn PushHost, config: &PushConfig, creds: &Credentials, stop: &mut watch::Receiver<bool>) -> Ended {
    let target = match subscribe_url(&config.base_url, &creds.org_id, config.site_id.as_deref())
        .ok_or_else(|| WsError::Io(format!("cannot build a subscribe URL on {}", config.base_url)))
        .and_then(|url| Target::from_url(&url))
    {
        Ok(t) => t,
        Err(e) => return retry(0, format!("push: {}", e)),
    };
    let bearer = format!("Bearer {}", creds.token);
    let user_agent = concat!("waitstate-rust/", env!("CARGO_PKG_VERSION"));
    let headers = [("authorization", bearer.as_str()), ("user-agent", user_agent)];
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let opened = tokio::select! {
        r = tokio::time::timeout(timeout, ws::connect(&target, &headers, MAX_MESSAGE_BYTES)) => r,
        _ = stopped(stop) => return Ended::Stopped,
    };
    let mut socket = match opened {
        Ok(Ok(s)) => s,
        Err(_) => return retry(0, format!("push connection to {}:{} timed out", target.host, target.port)),
        Ok(Err(e @ WsError::Io(_))) => return retry(0, format!("push connection failed: {}", e)),
        Ok(Err(WsError::Http { status, code, message })) => {
            let code = code.unwrap_or_default();
            return Ended::Retry {
                // An expired, unreadable or revoked token: only a new one can help.
                new_token: status == 401,
                status,
                why: format!("push subscription refused ({} {}: {})", status, code, message),
            };
        }
        Ok(Err(e @ WsError::Protocol { .. })) => return retry(0, format!("push subscription failed: {}", e)),
    };

    let period = config.keepalive;
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            received = socket.recv() => {
                last_heard = Instant::now();
                match received {
                    Ok(Message::Text(text)) => {
                        if text != "pong" {
                            on_message(host, &text);
                        }
                    }
                    Ok(Message::Ping(payload)) => {
                        if let Err(e) = socket.pong(&payload).await {
                            return retry(0, format!("push connection lost: {}", e));
                        }
                    }
                    Ok(Message::Pong(_)) => {}
                    Ok(Message::Close(frame)) => {
                        let code = frame.as_ref().map(|(c, _)| *c);
                        socket.finish(code).await;
                        let (code, reason) = frame.unwrap_or((1005, String::new()));
                        let new_token = code == CLOSE_KEY_REVOKED || code == CLOSE_TOKEN_EXPIRED;
                        let why = if code == CLOSE_KEY_REVOKED {
                            format!("push closed by the control plane ({} {}): the key was revoked", code, reason)
                        } else {
                            format!("push closed by the control plane ({} {})", code, reason)
                        };
                        return Ended::Retry { new_token, status: code, why };
                    }
                    Err(WsError::Protocol { close_code, message }) => {
                        socket.fail(close_code, &message).await;
                        return retry(close_code, format!("push connection failed: {}", message));
                    }
                    Err(e) => return retry(0, format!("push connection lost: {}", e)),
                }
            }
            _ = keepalive.tick() => {
                if last_heard.elapsed() >= period * SILENT_PERIODS {
                    // Half-open: drop it and let the backoff find a live one.
                    return retry(0, format!("push connection silent for {} s", last_heard.elapsed().as_secs()));
                }
                if let Err(e) = socket.send_text("ping").await {
                    return retry(0, format!("push connection lost: {}", e));
                }
            }
            _ = stopped(stop) => {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.close(ws::CLOSE_NORMAL, "shutdown")).await;
                return Ended::Stopped;
            }
        }
    }
}

/// A message from the server: `{"type":"policy","version","etag","policy"}`.
/// Other types are ignored, for a server newer than this client.
pub(crate) fn on_message(host: &dyn PushHost, text: &str) {
    let message: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => {
            host.report(PushReport::InvalidPolicy, 0, "ignored a pushed message that is not JSON".into());
            return;
        }
    };
    if message.get("type").and_then(Value::as_str) != Some("policy") {
        return;
    }
    if message.get("version").and_then(Value::as_u64).is_none() {
        host.report(
            PushReport::InvalidPolicy,
            0,
            "ignored a pushed policy without a non-negative integer version".into(),
        );
        return;
    }
    let version = message.get("version").and_then(Value::as_u64).unwrap_or(0);
    let etag = message.get("etag").and_then(Value::as_str).map(str::to_string);
    let raw = message.get("policy").unwrap_or(&Value::Null);
    let parsed = match Policy::from_value(raw) {
        Ok(p) if p.version() == version => Ok(p),
        Ok(p) => Err(format!("its version {} is not the message's {}", p.version(), version)),
        Err(why) => Err(why.to_string()),
    };
    match parsed {
        Ok(policy) => {
            host.install_pushed(policy, etag);
        }
        Err(why) => match Policy::kill_switch(raw) {
            Some(mut kill) => {
                // The envelope's version orders it, as it would have the valid policy.
                kill.wire.version = version;
                host.report(
                    PushReport::InvalidPolicy,
                    0,
                    format!(
                        "a pushed policy fails the schema ({}) but carries the kill switch, which is honoured: every call is denied (kill_signal) until a valid policy arrives",
                        why
                    ),
                );
                // No ETag: a read must fetch the valid policy, not confirm this one.
                host.install_pushed(kill, None);
            }
            None => host.report(
                PushReport::InvalidPolicy,
                0,
                format!(
                    "ignored a pushed policy that fails the schema ({}); the last good policy stays",
                    why
                ),
            ),
        },
    }
}

/// A token of our own, when the client's was refused and it holds no newer one.
async fn exchange(client: &reqwest::Client, config: &PushConfig) -> Result<Credentials, (u16, String)> {
    let ts = format!("{}", crate::gate::now_ms() as u64);
    let signature = crate::signing::token_exchange_signature("", &ts, &config.secret_key);
    let request = client
        .post(format!("{}{}", config.base_url, crate::client::TOKEN_EXCHANGE_PATH))
        .header("x-waitstate-id", &config.publish_key)
        .header("x-waitstate-timestamp", &ts)
        .header("x-waitstate-signature", signature);
    let answer = http::send(request, "token exchange (push)", &config.base_url)
        .await
        .map_err(|reason| (0, format!("token exchange failed: {}", reason)))?;
    if answer.status != 200 {
        return Err((answer.status, format!("token exchange refused: {}", answer.describe())));
    }
    let body: Value = serde_json::from_str(&answer.text).unwrap_or(Value::Null);
    match (body["token"].as_str(), body["orgId"].as_str(), body["expiresAt"].as_f64()) {
        (Some(token), Some(org), Some(expires_at)) if expires_at.is_finite() => Ok(Credentials {
            token: token.to_string(),
            org_id: org.to_string(),
            expires_at,
        }),
        _ => Err((200, "token exchange answered without token, expiresAt and orgId".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Gate;
    use crate::ws_server::{self, Handler, Request, Server, ServerSocket};
    use std::sync::Mutex;

    /// A host over a real gate, recording what the push task reports.
    struct TestHost {
        gate: Gate,
        etag: Mutex<Option<String>>,
        reports: Mutex<Vec<(PushReport, u16, String)>>,
    }

    impl PushHost for TestHost {
        fn install_pushed(&self, policy: Policy, etag: Option<String>) -> bool {
            let ok = self.gate.install_pushed(policy);
            if ok {
                *self.etag.lock().unwrap() = etag;
            }
            ok
        }
        fn report(&self, kind: PushReport, status: u16, message: String) {
            self.reports.lock().unwrap().push((kind, status, message));
        }
    }

    impl TestHost {
        fn version(&self) -> Option<u64> {
            self.gate.policy().map(|p| p.version())
        }
        fn reports(&self) -> Vec<(PushReport, u16, String)> {
            self.reports.lock().unwrap().clone()
        }
    }

    struct Running {
        host: Arc<TestHost>,
        credentials: watch::Sender<Option<Credentials>>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    fn creds(token: &str) -> Credentials {
        Credentials {
            token: token.into(),
            org_id: "org_1".into(),
            expires_at: crate::gate::now_ms() + 900_000.0,
        }
    }

    fn start(server: &Server, first: Option<Credentials>) -> Running {
        let host = Arc::new(TestHost {
            gate: Gate::default(),
            etag: Mutex::new(None),
            reports: Mutex::new(Vec::new()),
        });
        let (credentials, credentials_rx) = watch::channel(first);
        let (stop, stop_rx) = watch::channel(false);
        let config = PushConfig {
            base_url: server.url(),
            site_id: Some("prod".into()),
            publish_key: "ws_pub_test".into(),
            secret_key: "ws_sec_test".into(),
            request_timeout_ms: 5000,
            keepalive: Duration::from_millis(300),
        };
        let dyn_host: Arc<dyn PushHost> = host.clone();
        let task = tokio::spawn(run(dyn_host, config, credentials_rx, stop_rx));
        Running {
            host,
            credentials,
            stop,
            task,
        }
    }

    fn push(version: u64, policy: &str) -> String {
        format!(
            r#"{{"type":"policy","version":{v},"etag":"\"e{v}\"","policy":{p}}}"#,
            v = version,
            p = policy.replace("$v", &version.to_string())
        )
    }

    async fn until(what: &str, mut check: impl FnMut() -> bool) {
        for _ in 0..500 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {}", what);
    }

    /// Token exchanges answer "t2", "t3", … (or `refuse` with 401 KEY_REVOKED); upgrades are accepted.
    fn handler(refuse_tokens: bool) -> Handler {
        let issued = Arc::new(Mutex::new(1));
        Arc::new(move |r: &Request| {
            if r.method == "POST" && r.path == "/v1/auth/token" {
                if refuse_tokens {
                    return Some((401, vec![], r#"{"error":{"code":"KEY_REVOKED","message":"revoked"}}"#.into()));
                }
                let mut n = issued.lock().unwrap();
                *n += 1;
                let body = format!(
                    r#"{{"token":"t{}","orgId":"org_1","siteId":"prod","environment":"live","expiresAt":{}}}"#,
                    n,
                    crate::gate::now_ms() + 900_000.0
                );
                return Some((200, vec![], body));
            }
            None
        })
    }

    #[test]
    fn an_answer_overtaken_by_a_push_is_older() {
        let p = |json: &str| Policy::from_json(json).unwrap();
        let pushed = p(r#"{"version":7,"issuedAt":2000}"#);
        assert!(older_than(&p(r#"{"version":6,"issuedAt":1000}"#), Some(&pushed)));
        assert!(older_than(&p(r#"{"version":6}"#), Some(&pushed)));
        assert!(!older_than(&p(r#"{"version":7,"issuedAt":1000}"#), Some(&pushed)), "same version");
        assert!(!older_than(&p(r#"{"version":8}"#), Some(&pushed)));
        // a lower version issued later: the control plane started over; take it
        assert!(!older_than(&p(r#"{"version":1,"issuedAt":3000}"#), Some(&pushed)));
        assert!(!older_than(&p(r#"{"version":1}"#), None));
    }

    #[test]
    fn the_subscribe_url_and_the_backoff() {
        let u = subscribe_url("http://127.0.0.1:8787/", "org 1", Some("a:b")).unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:8787/v1/policy/org%201/subscribe?siteId=a%3Ab");
        let u = subscribe_url("https://cp.example/base", "org_1", None).unwrap();
        assert_eq!(u.as_str(), "https://cp.example/base/v1/policy/org_1/subscribe");
        // full jitter over 1 s doubling to 60 s
        assert_eq!(reconnect_delay_ms(1, 0.999_999).round(), 1000.0);
        assert_eq!(reconnect_delay_ms(2, 0.5), 1000.0);
        assert_eq!(reconnect_delay_ms(3, 0.5), 2000.0);
        assert_eq!(reconnect_delay_ms(7, 0.5), 30_000.0);
        assert_eq!(reconnect_delay_ms(8, 0.5), 30_000.0);
        assert_eq!(reconnect_delay_ms(40, 0.999_999).round(), 60_000.0);
        assert_eq!(reconnect_delay_ms(5, 0.0), 0.0);
    }

    #[tokio::test]
    async fn nothing_before_the_first_token_then_it_subscribes_with_it() {
        let mut server = ws_server::start(handler(false)).await;
        let r = start(&server, None);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(server.requests("GET", "/").is_empty(), "no subscription before a token");
        r.credentials.send_replace(Some(creds("t1")));
        let socket = server.accept().await;
        assert_eq!(socket.request.header("authorization"), Some("Bearer t1"));
        assert_eq!(socket.request.path, "/v1/policy/org_1/subscribe?siteId=prod");
        let _ = r.stop.send(true);
        r.task.await.unwrap();
    }

    #[tokio::test]
    async fn versions_only_go_forward_and_a_push_does_not_restart_the_lease() {
        let mut server = ws_server::start(handler(false)).await;
        let r = start(&server, Some(creds("t1")));
        // a policy synced a while ago (a pulse answer), version 2
        let synced_at = crate::gate::now_ms() - 30_000.0;
        r.host
            .gate
            .set_policy_at(Policy::from_json(r#"{"version":2,"leaseDurationSeconds":60}"#).unwrap(), synced_at);
        let mut socket = server.accept().await;
        socket.send_text(&push(1, r#"{"version":$v,"killSignal":true}"#)).await; // older: ignored
        socket.send_text(&push(2, r#"{"version":$v,"killSignal":true}"#)).await; // equal: a no-op
        socket
            .send_text(&push(5, r#"{"version":$v,"tagMaxWeights":{"free":0},"leaseDurationSeconds":600}"#))
            .await;
        socket.send_text(&push(4, r#"{"version":$v,"killSignal":true}"#)).await; // late and older: ignored
        socket.send_text("pong").await; // the keep-alive's answer is not a message
        socket
            .send_text(&push(6, r#"{"version":$v,"tagMaxWeights":{"free":0,"pro":0}}"#))
            .await;
        until("version 6", || r.host.version() == Some(6)).await;
        let gate = &r.host.gate;
        assert!(!gate.gate("pro", 1).allowed);
        assert!(gate.gate("other", 1).allowed, "the kill switch of stale pushes never applied");
        // the lease still runs from the last sync, with its length
        assert_eq!(gate.last_sync_at(), Some(synced_at));
        assert!(!gate.lease_expired_at(synced_at + 59_000.0));
        assert!(
            gate.lease_expired_at(synced_at + 61_000.0),
            "a push must not stretch the lease either"
        );
        assert_eq!(r.host.etag.lock().unwrap().as_deref(), Some("\"e6\""));
        assert!(r.host.reports().is_empty(), "{:?}", r.host.reports());
        let _ = r.stop.send(true);
        r.task.await.unwrap();
    }

    #[tokio::test]
    async fn bad_messages_are_reported_and_ignored_but_a_kill_switch_is_honoured() {
        let mut server = ws_server::start(handler(false)).await;
        let r = start(&server, Some(creds("t1")));
        // synced once: before the first sync every call is allowed whatever the policy
        r.host.gate.set_policy(Policy::from_json(r#"{"version":1}"#).unwrap());
        let mut socket = server.accept().await;
        socket.send_text(&push(3, r#"{"version":$v}"#)).await;
        until("version 3", || r.host.version() == Some(3)).await;
        socket.send_text("{not json").await;
        socket.send_text(r#"{"type":"hello","anything":1}"#).await; // a newer server's message: ignored quietly
        socket.send_text(&push(4, r#"{"version":$v,"pulseInterval":5}"#)).await; // invalid
        socket.send_text(&push(5, r#"[1,2]"#)).await; // not an object
        socket.send_text(r#"{"type":"policy","version":6}"#).await; // no policy
        socket.send_text(r#"{"type":"policy","version":-1,"policy":{"version":9}}"#).await; // bad envelope
        socket.send_text(r#"{"type":"policy","version":8,"policy":{"version":9}}"#).await; // versions disagree
                                                                                           // still connected, still v3
        socket
            .send_text(&push(7, r#"{"version":$v,"killSignal":true,"status":"bogus"}"#))
            .await;
        until("the kill-only policy", || r.host.version() == Some(7)).await;
        assert_eq!(r.host.gate.gate("free", 1).reason.as_str(), "kill_signal");
        let reports = r.host.reports();
        let kinds: Vec<PushReport> = reports.iter().map(|x| x.0).collect();
        assert_eq!(kinds, vec![PushReport::InvalidPolicy; 7], "{:?}", reports);
        assert!(reports[0].2.contains("not JSON"));
        assert!(reports[1].2.contains("pulseInterval"), "{}", reports[1].2);
        assert!(reports[4].2.contains("version"), "{}", reports[4].2);
        assert!(reports[5].2.contains("not the message's 8"), "{}", reports[5].2);
        assert!(reports[6].2.contains("kill switch"), "{}", reports[6].2);
        assert_eq!(*r.host.etag.lock().unwrap(), None, "a salvaged kill switch keeps no ETag");
        let _ = r.stop.send(true);
        r.task.await.unwrap();
    }

    #[tokio::test]
    async fn it_reconnects_after_a_close_an_error_or_a_dropped_connection_and_resyncs() {
        let mut server = ws_server::start(handler(false)).await;
        let r = start(&server, Some(creds("t1")));
        let mut socket = server.accept().await;
        socket.send_text(&push(1, r#"{"version":$v}"#)).await;
        socket.send_close(1011, "server error").await;
        assert_eq!(socket.expect_close().await, Some(1011), "the close is answered");
        // reconnects (within the first backoff step: < 1 s) and gets the current policy
        let mut socket = server.accept().await;
        socket.send_text(&push(2, r#"{"version":$v}"#)).await;
        until("version 2", || r.host.version() == Some(2)).await;
        socket.drop_connection().await;
        let mut socket = server.accept().await;
        socket.send_raw(&[0x82, 0x01, 0x00]).await; // binary: a protocol error
        assert_eq!(socket.expect_close().await, Some(1003));
        let mut socket = server.accept().await;
        socket.send_close(1008, "FLOODING").await;
        let _ = socket.expect_close().await;
        let mut socket = server.accept().await;
        socket.send_text(&push(3, r#"{"version":$v}"#)).await;
        until("version 3", || r.host.version() == Some(3)).await;
        // every attempt used the same token: no close asked for a new one
        assert!(server.requests("POST", "/v1/auth/token").is_empty());
        let _ = r.stop.send(true);
        r.task.await.unwrap();
    }

    #[tokio::test]
    async fn close_4002_and_a_401_upgrade_get_a_new_token_first() {
        let mut server = ws_server::start(handler(false)).await;
        let r = start(&server, Some(creds("t1")));
        let mut socket = server.accept().await;
        socket.send_close(CLOSE_TOKEN_EXPIRED, "TOKEN_EXPIRED").await;
        let socket = server.accept().await;
        assert_eq!(socket.request.header("authorization"), Some("Bearer t2"));
        let exchange = &server.requests("POST", "/v1/auth/token")[0];
        assert_eq!(exchange.header("x-waitstate-id"), Some("ws_pub_test"));
        assert_eq!(exchange.header("x-waitstate-signature").map(str::len), Some(64));
        // the client's own token, once newer, is taken at the next connection
        r.credentials.send_replace(Some(creds("from-client")));
        socket.drop_connection().await;
        let mut socket = server.accept().await;
        assert_eq!(socket.request.header("authorization"), Some("Bearer from-client"));
        assert_eq!(server.requests("POST", "/v1/auth/token").len(), 1);
        // refused again: the client holds nothing newer, so another exchange
        socket.send_close(CLOSE_TOKEN_EXPIRED, "TOKEN_EXPIRED").await;
        let socket = server.accept().await;
        assert_eq!(socket.request.header("authorization"), Some("Bearer t3"));
        let statuses: Vec<(PushReport, u16)> = r.host.reports().iter().map(|x| (x.0, x.1)).collect();
        assert_eq!(
            statuses,
            vec![
                (PushReport::Failed, CLOSE_TOKEN_EXPIRED),
                (PushReport::Failed, 0),
                (PushReport::Failed, CLOSE_TOKEN_EXPIRED)
            ]
        );
        assert!(r.host.reports()[0].2.contains("reconnecting in"), "{:?}", r.host.reports());
        let _ = r.stop.send(true);
        r.task.await.unwrap();
    }

    #[tokio::test]
    async fn close_4001_is_reported_and_it_keeps_trying_at_backoff_pace() {
        let mut server = ws_server::start(handler(true)).await;
        let r = start(&server, Some(creds("t1")));
        let mut socket = server.accept().await;
        socket.send_close(CLOSE_KEY_REVOKED, "KEY_REVOKED").await;
        until("the refused exchange", || r.host.reports().len() >= 2).await;
        let reports = r.host.reports();
        assert_eq!((reports[0].0, reports[0].1), (PushReport::Failed, CLOSE_KEY_REVOKED));
        assert!(reports[0].2.contains("revoked"), "{}", reports[0].2);
        assert_eq!((reports[1].0, reports[1].1), (PushReport::AuthFailed, 401));
        assert!(reports[1].2.contains("KEY_REVOKED"), "{}", reports[1].2);
        // it tries again with the token it has, and asks for a new one again
        let socket = server.accept().await;
        assert_eq!(socket.request.header("authorization"), Some("Bearer t1"));
        let _ = r.stop.send(true);
        r.task.await.unwrap();
    }

    #[tokio::test]
    async fn a_refused_subscription_is_reported_and_retried() {
        let calls = Arc::new(Mutex::new(0));
        let count = calls.clone();
        let handler: Handler = Arc::new(move |r: &Request| {
            let mut n = count.lock().unwrap();
            *n += 1;
            if r.is_upgrade() && *n == 1 {
                return Some((403, vec![], r#"{"error":{"code":"FORBIDDEN","message":"another site"}}"#.into()));
            }
            if r.is_upgrade() && *n == 2 {
                return Some((426, vec![], r#"{"error":{"code":"UPGRADE_REQUIRED","message":"x"}}"#.into()));
            }
            None
        });
        let mut server = ws_server::start(handler).await;
        let r = start(&server, Some(creds("t1")));
        let _socket: ServerSocket = server.accept().await;
        let reports = r.host.reports();
        assert_eq!(reports.len(), 2, "{:?}", reports);
        assert_eq!((reports[0].0, reports[0].1), (PushReport::Failed, 403));
        assert!(reports[0].2.contains("FORBIDDEN"));
        assert_eq!((reports[1].0, reports[1].1), (PushReport::Failed, 426));
        let _ = r.stop.send(true);
        r.task.await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_closes_the_socket_with_1000() {
        let mut server = ws_server::start(handler(false)).await;
        let r = start(&server, Some(creds("t1")));
        let mut socket = server.accept().await;
        socket.send_text(&push(1, r#"{"version":$v}"#)).await;
        until("version 1", || r.host.version() == Some(1)).await;
        let _ = r.stop.send(true);
        assert_eq!(socket.expect_close().await, Some(1000));
        socket.send_close(1000, "").await;
        tokio::time::timeout(Duration::from_secs(5), r.task).await.unwrap().unwrap();
        // and nothing more
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(server.sockets.try_recv().is_err());
    }

    #[tokio::test]
    async fn pings_are_answered_and_a_half_open_connection_is_noticed() {
        let mut server = ws_server::start(handler(false)).await;
        let r = start(&server, Some(creds("t1")));
        let mut socket = server.accept().await;
        socket.send_frame(true, 0x9, b"are you there").await;
        let pong = socket.read_frame().await.unwrap();
        assert_eq!((pong.opcode, pong.payload.as_slice()), (0xA, b"are you there".as_slice()));
        // every keep-alive period the text `ping`; a server that never answers is left after three
        let keepalive = socket.read_frame().await.unwrap();
        assert_eq!((keepalive.opcode, keepalive.payload.as_slice()), (0x1, b"ping".as_slice()));
        let again = server.accept().await;
        assert_eq!(again.request.header("authorization"), Some("Bearer t1"));
        let _ = r.stop.send(true);
        r.task.await.unwrap();
    }
}
