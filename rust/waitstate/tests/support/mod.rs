//! A control plane in the test process (hyper on 127.0.0.1) that checks
//! signatures as the real one does, counts each pulse once per (instanceId,
//! ts), and can be told to misbehave: the Rust twin of
//! `sdk-node/test/support/control-plane.ts`, for the faults the real control
//! plane cannot be told to inject.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Method, Request, Response, Server};
use serde_json::{json, Value};
use waitstate::signing::{pulse_signature, token_exchange_signature};
use waitstate::{Options, WaitState, WaitStateError};

pub const PUBLISH_KEY: &str = "ws_pub_test_rust";
pub const SECRET_KEY: &str = "ws_sec_test_rust_secret";
pub const ORG_ID: &str = "org_rust";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// 500 to everything.
    Error500,
    /// A 200 whose body is not JSON (a proxy's page).
    Garbage,
    /// Pulses are counted but answered with a policy that fails the schema; reads too.
    BadPolicy,
    /// Requests are never answered.
    Hang,
    /// The pulse is counted, then the connection is dropped before the answer.
    AcceptThenDrop,
}

#[derive(Clone, Debug)]
pub struct Received {
    pub body: Value,
    pub counted: bool,
}

pub struct State {
    pub fault: Fault,
    pub delay_ms: u64,
    pub policy: Value,
    pub pulses: Vec<Received>,
    last_ts: HashMap<String, u64>,
    pub tokens: Vec<String>,
    pub token_status: u16,
    pub token_ttl_ms: u64,
    /// Every pulse is answered with this status (before counting), when set.
    pub pulse_fail_status: Option<u16>,
    pub duplicate_instance: bool,
    pub policy_read_statuses: Vec<u16>,
    pub requests: Vec<String>,
    pub listening: bool,
}

pub struct ControlPlane {
    pub state: Arc<Mutex<State>>,
    pub addr: SocketAddr,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn json_response(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn error(status: u16, code: &str, message: &str) -> Response<Body> {
    json_response(status, &json!({"error": {"code": code, "message": message}}))
}

/// Dropping the connection without an answer.
struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}
impl std::fmt::Debug for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dropped")
    }
}
impl std::error::Error for Dropped {}

fn header<'a>(req: &'a Request<Body>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn handle(state: Arc<Mutex<State>>, req: Request<Body>) -> Result<Response<Body>, Dropped> {
    let (parts, body) = req.into_parts();
    let raw = hyper::body::to_bytes(body).await.map_err(|_| Dropped)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let req = Request::from_parts(parts, Body::empty());
    let (fault, delay, listening) = {
        let mut s = state.lock().unwrap();
        s.requests.push(format!("{} {}", req.method(), req.uri().path()));
        (s.fault, s.delay_ms, s.listening)
    };
    // A stopped control plane answers nothing, also on connections kept alive from before.
    if !listening {
        return Err(Dropped);
    }
    if fault == Fault::Hang {
        tokio::time::sleep(Duration::from_secs(10)).await;
        return Err(Dropped);
    }
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    match fault {
        Fault::Error500 => return Ok(error(500, "INTERNAL", "injected failure")),
        Fault::Garbage => {
            return Ok(Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from("<html>definitely not json"))
                .unwrap())
        }
        _ => {}
    }
    let path = req.uri().path().to_string();
    if req.method() == Method::POST && path == "/v1/auth/token" {
        return Ok(token(&state, &req, &raw));
    }
    if req.method() == Method::POST && path == "/v1/pulse" {
        return pulse(&state, &req, &raw, fault);
    }
    if req.method() == Method::GET && path.starts_with("/v1/policy/") {
        return Ok(policy_read(&state, &req, &path["/v1/policy/".len()..], fault));
    }
    Ok(error(404, "NOT_FOUND", "no route"))
}

fn signed(req: &Request<Body>) -> Result<(&str, &str), Response<Body>> {
    let id = header(req, "x-waitstate-id");
    let ts = header(req, "x-waitstate-timestamp");
    let sig = header(req, "x-waitstate-signature");
    match (id, ts, sig) {
        (Some(PUBLISH_KEY), Some(ts), Some(sig)) => {
            let skew = ts.parse::<i64>().map(|t| (t - now_ms() as i64).abs()).unwrap_or(i64::MAX);
            if skew > 5 * 60_000 {
                return Err(error(401, "TIMESTAMP_SKEW", "timestamp too far off"));
            }
            Ok((ts, sig))
        }
        _ => Err(error(401, "UNAUTHORIZED", "unsigned or unknown key")),
    }
}

fn token(state: &Arc<Mutex<State>>, req: &Request<Body>, raw: &str) -> Response<Body> {
    let mut s = state.lock().unwrap();
    if s.token_status != 200 {
        return error(s.token_status, "INVALID_SIGNATURE", "injected token failure");
    }
    if raw.contains(SECRET_KEY) {
        return error(401, "UNSIGNED_TOKEN_EXCHANGE", "the secret key was sent");
    }
    let (ts, sig) = match signed(req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if token_exchange_signature(raw, ts, SECRET_KEY) != sig {
        return error(401, "INVALID_SIGNATURE", "bad signature");
    }
    let token = format!("jwt_{}", s.tokens.len() + 1);
    s.tokens.push(token.clone());
    json_response(
        200,
        &json!({"token": token, "expiresAt": now_ms() + s.token_ttl_ms, "orgId": ORG_ID}),
    )
}

fn pulse(state: &Arc<Mutex<State>>, req: &Request<Body>, raw: &str, fault: Fault) -> Result<Response<Body>, Dropped> {
    let mut s = state.lock().unwrap();
    if let Some(status) = s.pulse_fail_status {
        return Ok(error(status, "UNAVAILABLE", "injected pulse failure"));
    }
    let (ts, sig) = match signed(req) {
        Ok(v) => v,
        Err(r) => return Ok(r),
    };
    if pulse_signature(raw, ts, SECRET_KEY) != sig {
        return Ok(error(401, "INVALID_SIGNATURE", "bad signature"));
    }
    if raw.len() > 64 * 1024 {
        return Ok(error(413, "PAYLOAD_TOO_LARGE", "over 64 KiB"));
    }
    let body: Value = match serde_json::from_str(raw) {
        Ok(v) => v,
        Err(_) => return Ok(error(400, "INVALID_JSON", "bad json")),
    };
    if let Some(why) = check_pulse(&body) {
        return Ok(error(400, "VALIDATION_FAILED", &why));
    }
    let instance = body["instanceId"].as_str().unwrap_or("").to_string();
    let pulse_ts = body["ts"].as_u64().unwrap_or(0);
    let counted = s.last_ts.get(&instance).map_or(true, |last| pulse_ts > *last);
    if counted {
        s.last_ts.insert(instance, pulse_ts);
    }
    s.pulses.push(Received { body, counted });
    if fault == Fault::AcceptThenDrop {
        return Err(Dropped);
    }
    let mut policy = s.policy.clone();
    if fault == Fault::BadPolicy {
        policy["globalMaxWeight"] = json!("lots");
        policy["pulseInterval"] = json!(-5);
    }
    let mut r = json_response(200, &policy);
    r.headers_mut().insert("x-waitstate-counted", counted.to_string().parse().unwrap());
    if s.duplicate_instance {
        r.headers_mut().insert("x-waitstate-duplicate-instance", "true".parse().unwrap());
    }
    if fault != Fault::BadPolicy {
        r.headers_mut()
            .insert("etag", format!("\"{}\"", s.policy["version"]).parse().unwrap());
    }
    Ok(r)
}

/// The pulse schema's checks that a client could get wrong.
fn check_pulse(b: &Value) -> Option<String> {
    let usage = b["usageDelta"].as_u64()?;
    let bounced = b["bouncedUnits"].as_u64()?;
    if bounced > usage {
        return Some("bouncedUnits > usageDelta".into());
    }
    let tags = b["tagMetrics"].as_array()?;
    if tags.len() > 512 {
        return Some("tagMetrics: at most 512".into());
    }
    let sum: u64 = tags.iter().map(|t| t["count"].as_u64().unwrap_or(0)).sum();
    if sum != usage {
        return Some(format!("usageDelta {} != sum of tag counts {}", usage, sum));
    }
    b["ts"].as_u64()?;
    None
}

fn policy_read(state: &Arc<Mutex<State>>, req: &Request<Body>, org: &str, fault: Fault) -> Response<Body> {
    let mut s = state.lock().unwrap();
    let auth = header(req, "authorization").unwrap_or("");
    let token = auth.strip_prefix("Bearer ").unwrap_or("");
    let (status, response) = if !s.tokens.iter().any(|t| t == token) {
        (401, error(401, "UNAUTHORIZED", "bad token"))
    } else if org != ORG_ID {
        (403, error(403, "FORBIDDEN", "other org"))
    } else if fault == Fault::BadPolicy {
        let mut p = s.policy.clone();
        p["status"] = json!("maybe");
        (200, json_response(200, &p))
    } else {
        let etag = format!("\"{}\"", s.policy["version"]);
        if header(req, "if-none-match") == Some(etag.as_str()) {
            (
                304,
                Response::builder().status(304).header("etag", etag).body(Body::empty()).unwrap(),
            )
        } else {
            let mut r = json_response(200, &s.policy);
            r.headers_mut().insert("etag", etag.parse().unwrap());
            (200, r)
        }
    };
    s.policy_read_statuses.push(status);
    response
}

impl ControlPlane {
    /// Starts on a free port with `policy` (completed with a version and issuedAt).
    pub async fn start(policy: Value) -> Arc<ControlPlane> {
        let state = Arc::new(Mutex::new(State {
            fault: Fault::None,
            delay_ms: 0,
            policy: json!({}),
            pulses: Vec::new(),
            last_ts: HashMap::new(),
            tokens: Vec::new(),
            token_status: 200,
            token_ttl_ms: 15 * 60_000,
            pulse_fail_status: None,
            duplicate_instance: false,
            policy_read_statuses: Vec::new(),
            requests: Vec::new(),
            listening: false,
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let cp = Arc::new(ControlPlane {
            state,
            addr,
            server: Mutex::new(None),
        });
        cp.set_policy(policy);
        cp.listen();
        cp
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// (Re)starts accepting connections on the same port.
    pub fn listen(&self) {
        let listener = std::net::TcpListener::bind(self.addr).expect("rebind the control plane's port");
        listener.set_nonblocking(true).unwrap();
        let state = self.state.clone();
        let make = make_service_fn(move |_| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(service_fn(move |req| handle(state.clone(), req))) }
        });
        let server = Server::from_tcp(listener).unwrap().serve(make);
        self.state.lock().unwrap().listening = true;
        *self.server.lock().unwrap() = Some(tokio::spawn(async move {
            let _ = server.await;
        }));
    }

    /// Stops accepting connections (they are refused) and answers nothing on open ones.
    pub fn stop(&self) {
        self.state.lock().unwrap().listening = false;
        if let Some(h) = self.server.lock().unwrap().take() {
            h.abort();
        }
    }

    pub fn listening(&self) -> bool {
        self.state.lock().unwrap().listening
    }

    /// Sets the policy the control plane answers (a new version).
    pub fn set_policy(&self, mut policy: Value) -> Value {
        let mut s = self.state.lock().unwrap();
        let version = s.policy["version"].as_u64().unwrap_or(0) + 1;
        policy["version"] = json!(version);
        if policy.get("issuedAt").is_none() {
            policy["issuedAt"] = json!(now_ms());
        }
        s.policy = policy.clone();
        policy
    }

    pub fn set_fault(&self, fault: Fault) {
        self.state.lock().unwrap().fault = fault;
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// Calls counted from one instance: the usage ledger.
    pub fn counted_usage(&self, instance: &str) -> u64 {
        let s = self.state.lock().unwrap();
        s.pulses
            .iter()
            .filter(|p| p.counted && p.body["instanceId"] == instance)
            .map(|p| p.body["usageDelta"].as_u64().unwrap())
            .sum()
    }

    pub fn pulse_count(&self) -> usize {
        self.state.lock().unwrap().pulses.len()
    }
}

/// Errors a client reported through `on_error`.
#[derive(Clone, Default)]
pub struct Errors(pub Arc<Mutex<Vec<WaitStateError>>>);

impl Errors {
    pub fn codes(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().iter().map(|e| e.code.as_str()).collect()
    }
    pub fn has(&self, code: &str) -> bool {
        self.codes().contains(&code)
    }
}

/// Options for a client of `cp`, errors collected.
pub fn options(cp: &ControlPlane, instance: &str) -> (Options, Errors) {
    let errors = Errors::default();
    let sink = errors.0.clone();
    let options = Options {
        publish_key: PUBLISH_KEY.into(),
        secret_key: SECRET_KEY.into(),
        base_url: cp.url(),
        instance_id: Some(instance.into()),
        pulse_interval_ms: Some(100),
        request_timeout_ms: 300,
        push: false,
        on_error: Some(Arc::new(move |e: &WaitStateError| sink.lock().unwrap().push(e.clone()))),
        ..Default::default()
    };
    (options, errors)
}

pub async fn client(cp: &ControlPlane, instance: &str) -> (WaitState, Errors) {
    let (options, errors) = options(cp, instance);
    (WaitState::start(options).await.expect("valid options"), errors)
}

/// Waits until `predicate` holds, polling; panics naming `what` after `timeout`.
pub async fn eventually(what: &str, timeout: Duration, mut predicate: impl FnMut() -> bool) {
    let start = Instant::now();
    while !predicate() {
        if start.elapsed() > timeout {
            panic!("timed out after {:?} waiting for {}", timeout, what);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
