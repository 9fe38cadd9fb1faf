//! WaitState core: the gate decision, the safe-mode token bucket, the latency
//! histogram and pulse signing. No I/O, no globals, no allocation: every piece of
//! state is a value the caller owns, so the same code serves the wasm module
//! (`waitstate-wasm`, one static instance behind a C ABI) and native clients.
//! The rules are specified once in `protocol/vectors/README.md` and checked by
//! `cargo test` against the shared JSON vectors.
//!
//! `no_std` always; the `json` feature adds policy parsing (`policy`), which
//! needs `alloc` and serde_json, for native clients only.
#![no_std]

#[cfg(feature = "json")]
extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod engine;
pub mod gate;
pub mod histogram;
#[cfg(feature = "json")]
pub mod policy;
pub mod sign;
