//! The agent's routes as plain functions: a parsed body in, a [`Reply`] out.
//! No I/O here: the HTTP shell (`server.rs`) reads bodies, looks the route up
//! and writes the reply. Every route feeds the one client, so one pulse
//! carries the telemetry of every caller on the node.
use serde_json::{json, Map, Value};

use crate::body::{self, describe, Body, Field, Parsed};

/// The part of the WaitState client the agent calls. None of these may fail:
/// the gate fails open, and telemetry a client drops it reports itself.
pub trait AgentClient: Send + Sync {
    /// `tag: None` is the default tag, `weight: None` the default weight.
    fn gate(&self, tag: Option<&str>, weight: Option<f64>) -> (bool, &'static str);
    fn report_latency(&self, ms: f64, tag: Option<&str>);
    fn report_error(&self, tag: Option<&str>);
    fn report(&self, metric: &str, value: f64, tag: Option<&str>);
    fn health(&self) -> Health;
}

/// What `GET /health` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    pub instance_id: String,
    pub synced: bool,
    pub policy_version: Option<u64>,
    pub safe_mode: bool,
}

/// Every error the agent answers with, and its status. Every error body is
/// `{"error":{"code","message"}}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The body is not JSON.
    InvalidJson,
    /// The body is JSON but not what the route takes; the message names the field.
    InvalidBody,
    /// The body is over the limit (64 KiB). 400 rather than 413, so every bad body is one status.
    BodyTooLarge,
    /// `/report-metric` with a name the control plane would refuse.
    InvalidMetricName,
    NotFound,
    /// A known path with the wrong method; the reply carries `Allow`.
    MethodNotAllowed,
    /// A bug (the client panicked, which it should never do). Nothing a caller sends leads here.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "INVALID_JSON",
            ErrorCode::InvalidBody => "INVALID_BODY",
            ErrorCode::BodyTooLarge => "BODY_TOO_LARGE",
            ErrorCode::InvalidMetricName => "INVALID_METRIC_NAME",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidJson | ErrorCode::InvalidBody | ErrorCode::BodyTooLarge | ErrorCode::InvalidMetricName => 400,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Internal => 500,
        }
    }
}

/// What a route answers; the shell writes `body` as JSON (nothing for 204).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: Option<String>,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
}

impl Reply {
    fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            body: Some(body.to_string()),
            allow: None,
        }
    }

    fn no_content() -> Reply {
        Reply {
            status: 204,
            body: None,
            allow: None,
        }
    }
}

pub fn error_reply(code: ErrorCode, message: &str) -> Reply {
    Reply::json(code.status(), &json!({ "error": { "code": code.as_str(), "message": message } }))
}

// ------------------------------------------------------------------ fields

type Checked<T> = Result<T, String>;

fn fail<T>(why: &str, field: Field<'_>) -> Checked<T> {
    Err(format!("{}, got {}", why, describe(field)))
}

/// Absent or `null` is `None`; anything else must pass `check`.
fn optional<'a, T>(field: Field<'a>, check: fn(Field<'a>) -> Checked<T>) -> Checked<Option<T>> {
    match field {
        Field::Absent => Ok(None),
        _ => check(field).map(Some),
    }
}

fn required<'a, T>(field: Field<'a>, check: fn(Field<'a>) -> Checked<T>) -> Checked<T> {
    match field {
        Field::Absent => Err("required".to_string()),
        _ => check(field),
    }
}

fn text(field: Field<'_>) -> Checked<&str> {
    match field {
        Field::Value(Value::String(s)) => Ok(s),
        _ => fail("expected a string", field),
    }
}

fn number(field: Field<'_>) -> Option<f64> {
    match field {
        Field::Value(Value::Number(n)) => n.as_f64(),
        Field::Infinite(x) => Some(x),
        _ => None,
    }
}

fn non_negative(field: Field<'_>) -> Checked<f64> {
    match number(field) {
        Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => fail("expected a finite number >= 0", field),
    }
}

fn finite(field: Field<'_>) -> Checked<f64> {
    match number(field) {
        Some(x) if x.is_finite() => Ok(x),
        _ => fail("expected a finite number", field),
    }
}

fn flag(field: Field<'_>) -> Checked<bool> {
    match field {
        Field::Value(Value::Bool(b)) => Ok(*b),
        _ => fail("expected true or false", field),
    }
}

fn object(field: Field<'_>) -> Checked<&Map<String, Value>> {
    match field {
        Field::Value(Value::Object(o)) => Ok(o),
        _ => fail("expected an object", field),
    }
}

/// Checks one field; a bad one becomes `INVALID_BODY` `"<name>: <why>"`.
/// Fields are checked in the order the routes list them, so the first bad one is named.
fn field<'a, T>(body: &'a Body, name: &str, check: impl FnOnce(Field<'a>) -> Checked<T>) -> Result<T, Reply> {
    check(body.get(name)).map_err(|why| error_reply(ErrorCode::InvalidBody, &format!("{}: {}", name, why)))
}

// ------------------------------------------------------------------ routes

/// Records telemetry of a request that already finished.
fn report_finished(client: &dyn AgentClient, tag: Option<&str>, latency_ms: Option<f64>, error: Option<bool>) {
    if let Some(ms) = latency_ms {
        client.report_latency(ms, tag);
    }
    if error == Some(true) {
        client.report_error(tag);
    }
}

/// `POST /gate`. `latency_ms` and `error` describe an earlier request of the
/// caller, so they are recorded before the decision and whatever it is.
fn gate_route(client: &dyn AgentClient, body: &Body) -> Result<Reply, Reply> {
    let tag = field(body, "tag", |f| optional(f, text))?;
    let weight = field(body, "weight", |f| optional(f, non_negative))?;
    let latency_ms = field(body, "latency_ms", |f| optional(f, non_negative))?;
    let error = field(body, "error", |f| optional(f, flag))?;
    report_finished(client, tag, latency_ms, error);
    let (allowed, reason) = client.gate(tag, weight);
    Ok(gate_reply(allowed, reason))
}

/// `{"allowed":…,"reason":…}` without building a JSON tree: this is the hot route.
fn gate_reply(allowed: bool, reason: &str) -> Reply {
    Reply {
        status: 200,
        body: Some(format!("{{\"allowed\":{},\"reason\":\"{}\"}}", allowed, reason)),
        allow: None,
    }
}

fn report_latency_route(client: &dyn AgentClient, body: &Body) -> Result<Reply, Reply> {
    let ms = field(body, "ms", |f| required(f, non_negative))?;
    let tag = field(body, "tag", |f| optional(f, text))?;
    client.report_latency(ms, tag);
    Ok(Reply::no_content())
}

fn report_error_route(client: &dyn AgentClient, body: &Body) -> Result<Reply, Reply> {
    let tag = field(body, "tag", |f| optional(f, text))?;
    client.report_error(tag);
    Ok(Reply::no_content())
}

/// Built-in metric names, which a custom metric may not take.
const RESERVED_METRIC_NAMES: [&str; 7] = [
    "latency",
    "p50_latency",
    "p95_latency",
    "p99_latency",
    "errors",
    "error_rate",
    "rps",
];

/// `POST /report-metric`. The name is checked here with the client's rule, so
/// the caller gets a 400 instead of a silent drop.
fn report_metric_route(client: &dyn AgentClient, body: &Body) -> Result<Reply, Reply> {
    let metric = field(body, "metric", |f| required(f, text))?;
    let value = field(body, "value", |f| required(f, finite))?;
    let tag = field(body, "tag", |f| optional(f, text))?;
    if !waitstate::telemetry::is_valid_custom_metric_name(metric) {
        let message = format!(
            "metric: {} is not a valid custom metric name (lowercase letters, digits and '_', a letter first, at most 63 characters, none of {})",
            describe(body.get("metric")),
            RESERVED_METRIC_NAMES.join(", ")
        );
        return Err(error_reply(ErrorCode::InvalidMetricName, &message));
    }
    client.report(metric, value, tag);
    Ok(Reply::no_content())
}

/// `GET /health`: 200 whenever the agent runs, synced or not (the gate fails
/// open, so an unsynced agent is still useful).
fn health_route(client: &dyn AgentClient) -> Reply {
    let h = client.health();
    let mut body = Map::new();
    body.insert("status".into(), json!("ok"));
    body.insert("instanceId".into(), json!(h.instance_id));
    body.insert("synced".into(), json!(h.synced));
    if let Some(version) = h.policy_version {
        body.insert("policyVersion".into(), json!(version));
    }
    body.insert("safeMode".into(), json!(h.safe_mode));
    Reply::json(200, &Value::Object(body))
}

// ------------------------------------------------------------------ Apollo Router coprocessor

pub const TAG_HEADER: &str = "x-waitstate-tag";
pub const WEIGHT_HEADER: &str = "x-waitstate-weight";
/// The status a denied request gets from the router.
pub const COPROCESSOR_BREAK_STATUS: u16 = 429;
/// Where the router keeps the operation name once it has parsed the query.
const OPERATION_NAME_CONTEXT_KEY: &str = "apollo::supergraph::operation_name";

/// A header's value as the router sends it (`{"name": ["value", …]}`, any
/// case): the first value, if it is a string.
fn header_of<'a>(headers: Option<&'a Map<String, Value>>, name: &str) -> Option<&'a str> {
    let headers = headers?;
    let (_, value) = headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name))?;
    let first = match value {
        Value::Array(values) => values.first()?,
        other => other,
    };
    first.as_str()
}

/// The weight header, leniently: headers come from end users, and a malformed
/// one must not fail their request, so anything but a finite number >= 0
/// means the default weight (as the middlewares do).
fn header_weight(headers: Option<&Map<String, Value>>) -> Option<f64> {
    let raw = header_of(headers, WEIGHT_HEADER)?.trim();
    if raw.is_empty() {
        return None;
    }
    js_number(raw).filter(|w| w.is_finite() && *w >= 0.0)
}

/// `Number(text)` for the decimal forms a header carries (`"2"`, `"0.5"`, `"1e3"`).
fn js_number(text: &str) -> Option<f64> {
    let ok = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if ok {
        text.parse::<f64>().ok()
    } else {
        None
    }
}

/// The GraphQL operation a coprocessor request is for: the router's context
/// entry (set from the supergraph stage on), else `operationName` of the
/// GraphQL request body (a JSON string at the router stage, an object after),
/// else the name of the first operation in its query.
fn operation_name(body: &Body) -> Option<String> {
    let named = |s: &str| if s.is_empty() { None } else { Some(s.to_string()) };
    if let Some(Value::Object(context)) = body.fields.get("context") {
        if let Some(Value::Object(entries)) = context.get("entries") {
            if let Some(name) = entries.get(OPERATION_NAME_CONTEXT_KEY).and_then(Value::as_str).and_then(named) {
                return Some(name);
            }
        }
    }
    let parsed;
    let request = match body.fields.get("body") {
        Some(Value::Object(request)) => request,
        Some(Value::String(text)) => {
            parsed = serde_json::from_str::<Value>(text).ok()?;
            parsed.as_object()?
        }
        _ => return None,
    };
    if let Some(name) = request.get("operationName").and_then(Value::as_str).and_then(named) {
        return Some(name);
    }
    request.get("query").and_then(Value::as_str).and_then(first_operation_name)
}

/// `query Name`, `mutation Name(…)`, `subscription Name {…}`: the name of the
/// first named operation of a GraphQL document (comments skipped). An
/// anonymous operation (`{ me { id } }`) has none.
fn first_operation_name(query: &str) -> Option<String> {
    let mut rest = query;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',' || c == '\u{feff}');
        if rest.starts_with('#') {
            rest = rest.find('\n').map_or("", |at| &rest[at..]);
            continue;
        }
        break;
    }
    let keyword = ["query", "mutation", "subscription"].into_iter().find(|k| rest.starts_with(k))?;
    let after = rest[keyword.len()..].trim_start();
    let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    let starts_well = name.chars().next().map_or(false, |c| !c.is_ascii_digit());
    if starts_well && after.len() < rest.len() - keyword.len() {
        Some(name)
    } else {
        None
    }
}

/// The GraphQL error response a denied request gets, in the shape of the
/// stage's `body` (a string at the router stage).
fn break_body(received: Option<&Value>, reason: &str, tag: Option<&str>) -> Value {
    let mut extensions = Map::new();
    extensions.insert("code".into(), json!("RATE_LIMITED"));
    extensions.insert("reason".into(), json!(reason));
    if let Some(tag) = tag {
        extensions.insert("tag".into(), json!(tag));
    }
    let response = json!({
        "errors": [{
            "message": format!("Too many requests: WaitState denied this request (reason: {}).", reason),
            "extensions": Value::Object(extensions),
        }]
    });
    match received {
        Some(Value::String(_)) => Value::String(response.to_string()),
        _ => response,
    }
}

/// `POST /coprocess`: an Apollo Router coprocessor. Request stages
/// (`RouterRequest`, `SupergraphRequest`, `ExecutionRequest`,
/// `SubgraphRequest`, or no stage) are gated; response stages only record
/// telemetry, so a router that sends both halves counts each request once.
/// The tag: top-level `tag`, else the `x-waitstate-tag` header, else the
/// GraphQL operation name; the weight: top-level `weight`, else the
/// `x-waitstate-weight` header. The answer is the request as received with
/// `control` set (and `body` replaced when it breaks).
fn coprocess_route(client: &dyn AgentClient, body: Body) -> Result<Reply, Reply> {
    let stage = field(&body, "stage", |f| optional(f, text))?;
    let headers = field(&body, "headers", |f| optional(f, object))?;
    let given_tag = field(&body, "tag", |f| optional(f, text))?;
    let given_weight = field(&body, "weight", |f| optional(f, non_negative))?;
    let latency_ms = field(&body, "latencyMs", |f| optional(f, non_negative))?;
    let error = field(&body, "error", |f| optional(f, flag))?;
    let tag: Option<String> = given_tag
        .map(str::to_string)
        .or_else(|| header_of(headers, TAG_HEADER).filter(|t| !t.is_empty()).map(str::to_string))
        .or_else(|| operation_name(&body));
    let weight = given_weight.or_else(|| header_weight(headers));
    let stage_gated = stage.map_or(true, |s| s.ends_with("Request"));
    report_finished(client, tag.as_deref(), latency_ms, error);
    let decision = if stage_gated {
        Some(client.gate(tag.as_deref(), weight))
    } else {
        None
    };
    let mut answer = body.fields;
    match decision {
        Some((false, reason)) => {
            let replaced = break_body(answer.get("body"), reason, tag.as_deref());
            answer.insert("control".into(), json!({ "break": COPROCESSOR_BREAK_STATUS }));
            answer.insert("body".into(), replaced);
        }
        _ => {
            answer.insert("control".into(), json!("continue"));
        }
    }
    Ok(Reply::json(200, &Value::Object(answer)))
}

// ------------------------------------------------------------------ table

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Gate,
    Coprocess,
    ReportLatency,
    ReportError,
    ReportMetric,
    Health,
}

/// Every route by path, in the order the 404 message lists them.
pub const ROUTES: [(&str, Route); 6] = [
    ("/gate", Route::Gate),
    ("/coprocess", Route::Coprocess),
    ("/report-latency", Route::ReportLatency),
    ("/report-error", Route::ReportError),
    ("/report-metric", Route::ReportMetric),
    ("/health", Route::Health),
];

impl Route {
    pub fn find(path: &str) -> Option<Route> {
        ROUTES.iter().find(|(p, _)| *p == path).map(|(_, r)| *r)
    }

    /// `GET` for `/health`, `POST` for the rest.
    pub fn takes_get(self) -> bool {
        self == Route::Health
    }

    /// Whether an empty body stands for `{}` (all defaults).
    fn empty_body_allowed(self) -> bool {
        self != Route::Coprocess
    }

    /// Answers a request on this route with the raw body (POST routes).
    pub fn handle(self, client: &dyn AgentClient, raw: &str) -> Reply {
        if self == Route::Health {
            return health_route(client);
        }
        let body = match parse_body(self, raw) {
            Ok(body) => body,
            Err(reply) => return reply,
        };
        let answered = match self {
            Route::Gate => gate_route(client, &body),
            Route::Coprocess => coprocess_route(client, body),
            Route::ReportLatency => report_latency_route(client, &body),
            Route::ReportError => report_error_route(client, &body),
            Route::ReportMetric => report_metric_route(client, &body),
            Route::Health => Ok(health_route(client)),
        };
        answered.unwrap_or_else(|refused| refused)
    }
}

/// A request body: empty (or whitespace) is `{}` where the route allows it;
/// otherwise it must be a JSON object.
fn parse_body(route: Route, raw: &str) -> Result<Body, Reply> {
    if raw.trim().is_empty() {
        return if route.empty_body_allowed() {
            Ok(Body::default())
        } else {
            Err(error_reply(ErrorCode::InvalidBody, "body: expected a JSON object, got nothing"))
        };
    }
    match body::parse(raw) {
        Ok(Parsed::Object(body)) => Ok(body),
        Ok(Parsed::NotObject(what)) => Err(error_reply(
            ErrorCode::InvalidBody,
            &format!("body: expected an object, got {}", what),
        )),
        Err(why) => Err(error_reply(ErrorCode::InvalidJson, &format!("body: not valid JSON ({})", why))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records every call; denies the tags in `blocked`.
    #[derive(Default)]
    struct Recorder {
        blocked: Vec<&'static str>,
        calls: Mutex<Vec<String>>,
    }

    impl AgentClient for Recorder {
        fn gate(&self, tag: Option<&str>, weight: Option<f64>) -> (bool, &'static str) {
            self.calls.lock().unwrap().push(format!("gate {:?} {:?}", tag, weight));
            if tag.map_or(false, |t| self.blocked.contains(&t)) {
                (false, "tag_blocked")
            } else {
                (true, "allowed")
            }
        }
        fn report_latency(&self, ms: f64, tag: Option<&str>) {
            self.calls.lock().unwrap().push(format!("latency {} {:?}", ms, tag));
        }
        fn report_error(&self, tag: Option<&str>) {
            self.calls.lock().unwrap().push(format!("error {:?}", tag));
        }
        fn report(&self, metric: &str, value: f64, tag: Option<&str>) {
            self.calls.lock().unwrap().push(format!("metric {} {} {:?}", metric, value, tag));
        }
        fn health(&self) -> Health {
            Health {
                instance_id: "i".into(),
                synced: false,
                policy_version: None,
                safe_mode: false,
            }
        }
    }

    fn calls(r: &Recorder) -> Vec<String> {
        r.calls.lock().unwrap().clone()
    }

    fn json_of(reply: &Reply) -> Value {
        serde_json::from_str(reply.body.as_deref().unwrap()).unwrap()
    }

    #[test]
    fn gate_records_the_earlier_request_first_then_decides() {
        let r = Recorder::default();
        let reply = Route::Gate.handle(&r, r#"{"tag":"a","weight":2,"latency_ms":4,"error":true}"#);
        assert_eq!(json_of(&reply), json!({"allowed": true, "reason": "allowed"}));
        assert_eq!(
            calls(&r),
            ["latency 4 Some(\"a\")", "error Some(\"a\")", "gate Some(\"a\") Some(2.0)"]
        );
    }

    #[test]
    fn the_first_bad_field_is_named_and_nothing_is_recorded() {
        let r = Recorder::default();
        let reply = Route::Gate.handle(&r, r#"{"latency_ms":3,"error":"yes","weight":-1}"#);
        assert_eq!(reply.status, 400);
        assert_eq!(json_of(&reply)["error"]["message"], "weight: expected a finite number >= 0, got -1");
        let reply = Route::Gate.handle(&r, r#"{"weight":1e999}"#);
        assert_eq!(
            json_of(&reply)["error"]["message"],
            "weight: expected a finite number >= 0, got Infinity"
        );
        assert!(calls(&r).is_empty());
    }

    #[test]
    fn coprocess_tags_by_header_then_by_operation_name() {
        let r = Recorder {
            blocked: vec!["GetMe"],
            ..Recorder::default()
        };
        let by_name = r#"{"stage":"RouterRequest","headers":{},"body":"{\"query\":\"query GetMe { me { id } }\"}"}"#;
        let reply = Route::Coprocess.handle(&r, by_name);
        let answer = json_of(&reply);
        assert_eq!(answer["control"], json!({"break": 429}));
        let error: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        assert_eq!(error["errors"][0]["extensions"]["tag"], "GetMe");
        let by_header = r#"{"stage":"RouterRequest","headers":{"X-WaitState-Tag":["paid"]},"body":"{\"operationName\":\"GetMe\"}"}"#;
        assert_eq!(json_of(&Route::Coprocess.handle(&r, by_header))["control"], "continue");
        assert_eq!(calls(&r), ["gate Some(\"GetMe\") None", "gate Some(\"paid\") None"]);
    }

    #[test]
    fn operation_names_from_the_query_text() {
        assert_eq!(first_operation_name("query Me { me { id } }").as_deref(), Some("Me"));
        assert_eq!(
            first_operation_name("  # a comment\n mutation AddItem($id: ID!) { x }").as_deref(),
            Some("AddItem")
        );
        assert_eq!(first_operation_name("subscription OnEvent{ e }").as_deref(), Some("OnEvent"));
        assert_eq!(first_operation_name("{ me { id } }"), None);
        assert_eq!(first_operation_name("query { me { id } }"), None);
        assert_eq!(first_operation_name("queryX { me }"), None);
    }

    #[test]
    fn response_stages_report_but_are_not_gated() {
        let r = Recorder::default();
        let reply = Route::Coprocess.handle(&r, r#"{"stage":"RouterResponse","tag":"api","latencyMs":25,"error":true}"#);
        assert_eq!(json_of(&reply)["control"], "continue");
        assert_eq!(calls(&r), ["latency 25 Some(\"api\")", "error Some(\"api\")"]);
    }

    #[test]
    fn header_weights_are_read_leniently() {
        let headers = |w: Value| json!({ "x-waitstate-weight": w }).as_object().unwrap().clone();
        assert_eq!(header_weight(Some(&headers(json!(["5"])))), Some(5.0));
        assert_eq!(header_weight(Some(&headers(json!([" 0.5 "])))), Some(0.5));
        for bad in [
            json!(["lots"]),
            json!([""]),
            json!(["-4"]),
            json!([7]),
            json!({}),
            json!(["Infinity"]),
            json!(["0x10"]),
        ] {
            assert_eq!(header_weight(Some(&headers(bad.clone()))), None, "{}", bad);
        }
    }

    #[test]
    fn every_error_code_has_its_status() {
        let table: Vec<(&str, u16)> = [
            ErrorCode::InvalidJson,
            ErrorCode::InvalidBody,
            ErrorCode::BodyTooLarge,
            ErrorCode::InvalidMetricName,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::Internal,
        ]
        .iter()
        .map(|c| (c.as_str(), c.status()))
        .collect();
        assert_eq!(
            table,
            [
                ("INVALID_JSON", 400),
                ("INVALID_BODY", 400),
                ("BODY_TOO_LARGE", 400),
                ("INVALID_METRIC_NAME", 400),
                ("NOT_FOUND", 404),
                ("METHOD_NOT_ALLOWED", 405),
                ("INTERNAL", 500)
            ]
        );
    }
}
