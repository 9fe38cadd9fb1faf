//! `waitstate-agent`: the WaitState sidecar. One `waitstate` client behind a
//! small HTTP API, so services in any language gate and report over HTTP and
//! one pulse carries the telemetry of every caller on the node.
//!
//! Configured by environment variables (see `config.rs`); logs one line to
//! stdout when it listens and one line to stderr per client error. SIGTERM or
//! SIGINT: stop accepting requests, send the final pulse, exit 0. A second
//! signal exits at once with 1.
mod body;
mod config;
mod routes;
mod server;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::{make_service_fn, service_fn};
use tokio::signal::unix::{signal, SignalKind};
use waitstate::{Options, SafeModeStrategy, WaitState, WaitStateError};

use crate::config::AgentConfig;
use crate::routes::{AgentClient, Health};
use crate::server::{Agent, DEFAULT_MAX_BODY_BYTES};

const NAME: &str = "waitstate-agent";
/// How long the shutdown waits for requests in flight before dropping their connections.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The client behind the routes.
struct Client(WaitState);

impl AgentClient for Client {
    fn gate(&self, tag: Option<&str>, weight: Option<f64>) -> (bool, &'static str) {
        let r = self.0.gate(tag.unwrap_or(waitstate::gate::DEFAULT_TAG), weight.unwrap_or(1.0));
        (r.allowed, r.reason.as_str())
    }
    fn report_latency(&self, ms: f64, tag: Option<&str>) {
        self.0.report_latency(ms, tag);
    }
    fn report_error(&self, tag: Option<&str>) {
        self.0.report_error(tag);
    }
    fn report(&self, metric: &str, value: f64, tag: Option<&str>) {
        self.0.report(metric, value, tag);
    }
    fn health(&self) -> Health {
        let s = self.0.status();
        Health {
            instance_id: s.instance_id,
            synced: s.synced,
            policy_version: s.policy_version,
            safe_mode: s.safe_mode,
        }
    }
}

fn one_line(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn log_error(line: &str) {
    // One write per line, so lines of concurrent writers never interleave.
    let _ = std::io::stderr().write_all(format!("{}\n", one_line(line)).as_bytes());
}

fn log_out(line: &str) {
    let mut out = std::io::stdout();
    let _ = out.write_all(format!("{}\n", line).as_bytes());
    let _ = out.flush();
}

fn fatal(message: &str) -> ! {
    log_error(&format!("{}: {}", NAME, message));
    std::process::exit(1);
}

fn strategy_of(name: Option<&str>) -> SafeModeStrategy {
    match name {
        Some("fixed_rps") => SafeModeStrategy::FixedRps,
        Some("last_policy") => SafeModeStrategy::LastPolicy,
        _ => SafeModeStrategy::Open,
    }
}

/// The error name Node and the C library use (`EADDRINUSE`), which operators search for.
fn errno_name(e: &std::io::Error) -> String {
    let name = match e.kind() {
        std::io::ErrorKind::AddrInUse => "EADDRINUSE: ",
        std::io::ErrorKind::AddrNotAvailable => "EADDRNOTAVAIL: ",
        std::io::ErrorKind::PermissionDenied => "EACCES: ",
        _ => "",
    };
    format!("{}{}", name, e)
}

fn bind(host: &str, port: u16) -> Result<TcpListener, String> {
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs().map_err(|e| e.to_string())?.collect();
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpListener::bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = errno_name(&e),
        }
    }
    Err(last)
}

fn main() {
    // A panic anywhere is one line on stderr (a route's panic becomes a 500 `INTERNAL`).
    std::panic::set_hook(Box::new(|info| log_error(&format!("{}: INTERNAL: {}", NAME, info))));
    let config = match config::read_config(&|name| std::env::var(name).ok(), &config::hostname(), std::process::id()) {
        Ok(config) => config,
        Err(message) => fatal(&message),
    };
    // One thread: a sidecar's budget is a fraction of a core, and the gate is in memory.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => fatal(&format!("cannot start the runtime: {}", e)),
    };
    runtime.block_on(run(config));
}

async fn run(config: AgentConfig) {
    // Before anything else: a signal that arrives while the client starts still gets its final pulse.
    let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(term), Ok(int)) => (term, int),
        _ => fatal("cannot install the SIGTERM and SIGINT handlers"),
    };
    let options = Options {
        publish_key: config.publish_key.clone(),
        secret_key: config.secret_key.clone(),
        base_url: config.base_url.clone(),
        site_id: config.site_id.clone(),
        instance_id: Some(config.instance_id.clone()),
        safe_mode_strategy: strategy_of(config.safe_mode_strategy.as_deref()),
        safe_mode_max_rps: config.safe_mode_max_rps.unwrap_or(50),
        on_error: Some(Arc::new(|e: &WaitStateError| {
            let status = if e.status != 0 { format!(" ({})", e.status) } else { String::new() };
            log_error(&format!("{}: {}{}: {}", NAME, e.code.as_str(), status, e.message));
        })),
        ..Options::default()
    };
    let ws = match WaitState::start(options).await {
        Ok(ws) => ws,
        Err(e) => fatal(&format!("invalid configuration: {}", e)),
    };
    let listener = match bind(&config.host, config.port) {
        Ok(listener) => listener,
        Err(why) => {
            ws.shutdown().await;
            fatal(&format!("cannot listen on {}:{}: {}", config.host, config.port, why));
        }
    };
    let server = listener
        .set_nonblocking(true)
        .map_err(|e| e.to_string())
        .and_then(|()| hyper::Server::from_tcp(listener).map_err(|e| e.to_string()));
    let server = match server {
        Ok(builder) => builder.http1_keepalive(true).tcp_nodelay(true),
        Err(why) => fatal(&format!("cannot listen on {}:{}: {}", config.host, config.port, why)),
    };
    let agent = Arc::new(Agent {
        client: Arc::new(Client(ws.clone())),
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
    });
    let make = make_service_fn(move |_| {
        let agent = agent.clone();
        async move { Ok::<_, std::convert::Infallible>(service_fn(move |req| agent.clone().handle(req))) }
    });
    let server = server.serve(make);
    let local = server.local_addr();
    let shown = if local.is_ipv6() {
        format!("[{}]", local.ip())
    } else {
        local.ip().to_string()
    };
    log_out(&format!(
        "{} listening on http://{}:{} (instance {}, control plane {})",
        NAME,
        shown,
        local.port(),
        ws.instance_id(),
        config.base_url
    ));

    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.with_graceful_shutdown(async move {
        let _ = stopping_rx.await;
    }));
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    log_out(&format!("{}: {}: closing, sending the final pulse", NAME, name));
    // The server first, so nothing reaches the client after its final pulse.
    let _ = stopping_tx.send(());
    let close = async {
        let mut serving = serving;
        // In-flight requests get the grace period; then their connections are dropped.
        if tokio::time::timeout(CLOSE_GRACE, &mut serving).await.is_err() {
            serving.abort();
        }
        ws.shutdown().await;
    };
    tokio::select! {
        _ = close => {
            log_out(&format!("{}: stopped", NAME));
            std::process::exit(0);
        }
        again = async { tokio::select! { _ = term.recv() => "SIGTERM", _ = int.recv() => "SIGINT" } } => {
            log_error(&format!("{}: {} again: exiting without waiting for the final pulse", NAME, again));
            std::process::exit(1);
        }
    }
}
