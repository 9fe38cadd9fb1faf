//! The HTTP side of the client: reqwest with a deadline per request, answers
//! reduced to what the lifecycle needs, and failures described with the host
//! and port they concern.
use std::time::Duration;

use reqwest::header::HeaderMap;

/// An answer: its status, the headers the lifecycle reads, and the body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `401 TIMESTAMP_SKEW: …`, from the typed error body when there is one.
    pub fn describe(&self) -> String {
        let parsed: Option<serde_json::Value> = serde_json::from_str(&self.text).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        match error {
            Some(e) => format!(
                "{} {}: {}",
                self.status,
                e.get("code").and_then(|c| c.as_str()).unwrap_or("?"),
                e.get("message").and_then(|c| c.as_str()).unwrap_or("")
            ),
            None => format!("HTTP {}", self.status),
        }
    }
}

pub(crate) fn client(timeout_ms: u64) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .timeout(Duration::from_millis(timeout_ms))
        .user_agent(concat!("waitstate-rust/", env!("CARGO_PKG_VERSION")));
    // Only a TLS backend that cannot initialise makes build() fail; a default client then
    // still serves plain http (a local control plane), and https fails per request, reported.
    builder.build().unwrap_or_default()
}

/// Sends a request; `Err` describes why no answer came (refused, timeout, DNS…).
pub(crate) async fn send(request: reqwest::RequestBuilder, what: &str, base_url: &str) -> Result<Answer, String> {
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return Err(describe_failure(&e, what, base_url)),
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    match response.text().await {
        Ok(text) => Ok(Answer { status, headers, text }),
        Err(e) => Err(describe_failure(&e, what, base_url)),
    }
}

fn describe_failure(e: &reqwest::Error, what: &str, base_url: &str) -> String {
    let host = reqwest::Url::parse(base_url)
        .ok()
        .map(|u| format!("{}:{}", u.host_str().unwrap_or("?"), u.port_or_known_default().unwrap_or(0)))
        .unwrap_or_else(|| base_url.to_string());
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "failed"
    };
    format!("{} to {} {}: {}", what, host, kind, e)
}
