//! WaitState core: the gate decision, the safe-mode token bucket, the latency
//! histogram and pulse signing. No I/O, no allocation, no panics across the
//! C ABI (`abi` module, compiled for wasm32). The same rules as the TypeScript
//! implementation, specified once in `protocol/vectors/README.md` and checked
//! by `cargo test` against the shared JSON vectors.
#![cfg_attr(target_arch = "wasm32", no_std)]

pub mod gate;
pub mod histogram;
pub mod sign;

/// The C ABI. Compiled on every target so that `cargo test` exercises it natively too.
pub mod abi;

#[cfg(all(target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Built with panic = "abort"; nothing may unwind into JavaScript.
    core::arch::wasm32::unreachable()
}
