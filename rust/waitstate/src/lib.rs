//! WaitState for Rust. The crate's README follows (with the default `runtime`
//! feature its examples run as doctests).
#![cfg_attr(feature = "runtime", doc = include_str!("../README.md"))]
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
#[cfg(feature = "runtime")]
mod push;
#[cfg(feature = "runtime")]
mod ws;
#[cfg(all(test, feature = "runtime"))]
mod ws_server;

pub use gate::{Gate, GateResult, Reason, SafeModeStrategy, TakenCounts};
pub use policy::{Policy, PolicyError, PolicyStatus};

#[cfg(feature = "runtime")]
pub use client::{Error, ErrorCode, Options, Status, Timer, WaitState, WaitStateError};
