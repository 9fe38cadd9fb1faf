#!/usr/bin/env node
// Builds the Rust agent, `waitstate-agent` (rust/agent), with the workspace's
// toolchain (Debian's toolchain and crates offline, else the cargo on PATH).
// The benchmark and the image use the `agent` profile (optimized, thin LTO,
// unwinding: a panic in one request is a 500, not a dead sidecar); the tests
// use the `dev` profile, which `cargo test` has already built the dependencies
// of, so a change to the agent rebuilds in seconds rather than relinking with
// LTO. Cargo makes a second call a no-op.
//
//   node scripts/build-agent.mjs [--dev]     build, print the binary's path
import { existsSync } from "node:fs";
import path from "node:path";
import { findToolchain, RUST_INSTALL_COMMAND, RUST_DIR } from "./build-wasm.mjs";
import { isMain, run } from "./lib.mjs";

const TARGET_DIR = path.join(RUST_DIR, "target");
/** Where each profile's binary lands. */
export const AGENT_BINARIES = {
  agent: path.join(TARGET_DIR, "agent", "waitstate-agent"),
  dev: path.join(TARGET_DIR, "debug", "waitstate-agent"),
};

/**
 * Builds the agent. Resolves { binary } with its path, or { skipped } saying
 * why there is none (no Rust toolchain here, and how to install one). Rejects
 * when cargo fails: a build error is a failure, not a skip.
 */
export async function buildAgent({ quiet = true, profile = "agent" } = {}) {
  const tc = findToolchain({ wasm: false });
  if (tc === null) return { skipped: `no Rust toolchain (cargo, rustc) here; install: ${RUST_INSTALL_COMMAND}` };
  // As build-wasm.mjs's cargo(), but quiet: a test run shows cargo's output only when the build fails.
  const args = ["build", ...tc.config, "-p", "waitstate-agent", "--profile", profile, "--bin", "waitstate-agent"];
  const { code, output } = await run(tc.cargo, args, {
    cwd: RUST_DIR,
    env: { CARGO_TARGET_DIR: TARGET_DIR, CARGO_TERM_COLOR: "never", ...tc.env },
    capture: true,
    quiet,
  });
  const binary = AGENT_BINARIES[profile];
  if (code !== 0 || !existsSync(binary)) {
    throw new Error(`cargo build -p waitstate-agent failed (exit ${code}):\n${output.split("\n").slice(-40).join("\n")}`);
  }
  return { binary };
}

if (isMain(import.meta.url)) {
  try {
    const built = await buildAgent({ quiet: false, profile: process.argv.includes("--dev") ? "dev" : "agent" });
    process.stdout.write(`${built.binary ?? `skipped: ${built.skipped}`}\n`);
    process.exitCode = built.binary ? 0 : 1;
  } catch (error) {
    process.stderr.write(`[build-agent] ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}
