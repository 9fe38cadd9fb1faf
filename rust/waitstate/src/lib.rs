//! WaitState for Rust: adaptive gating that adds fleet-wide traffic
//! intelligence on top of your existing infrastructure.
//!
//! [`WaitState::gate`] answers in memory from the policy in force (one atomic
//! load of an `ArcSwap`, lock-free counters, no allocation once a tag has been
//! seen, never panics); background tokio tasks pulse telemetry to the control
//! plane (HMAC-signed), install the policy it answers, keep the lease and fall
//! back to safe mode when the control plane cannot be reached.
//!
//! ```no_run
//! use waitstate::{Options, WaitState};
//!
//! # async fn run() -> Result<(), waitstate::Error> {
//! let ws = WaitState::start(Options {
//!     publish_key: std::env::var("WAITSTATE_PUBLISH_KEY").unwrap_or_default(),
//!     secret_key: std::env::var("WAITSTATE_SECRET_KEY").unwrap_or_default(),
//!     base_url: "https://waitstate.example.com".into(),
//!     site_id: Some("prod".into()),
//!     ..Default::default()
//! })
//! .await?;
//!
//! let result = ws.gate("free", 1);
//! if !result.allowed {
//!     println!("429: {}", result.reason.as_str());
//! }
//! ws.report_latency(42.5, Some("free"));
//! ws.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Without the default `runtime` feature the crate is the pure [`Gate`]: no
//! tokio, no network; the caller installs policies with [`Gate::set_policy`].
#![forbid(unsafe_code)]

pub mod gate;
pub mod lifecycle;
pub mod policy;
pub mod signing;
pub mod telemetry;

#[cfg(feature = "runtime")]
mod client;
#[cfg(feature = "runtime")]
mod http;

pub use gate::{Gate, GateResult, Reason, SafeModeStrategy, TakenCounts};
pub use policy::{Policy, PolicyError, PolicyStatus};

#[cfg(feature = "runtime")]
pub use client::{Error, ErrorCode, Options, Status, Timer, WaitState, WaitStateError};
