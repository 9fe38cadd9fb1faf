#!/usr/bin/env node
// Builds wasm-core for wasm32-unknown-unknown (release: lto, codegen-units 1,
// panic abort, strip — see wasm-core/Cargo.toml), shrinks it with binaryen's
// wasm-opt (-Oz) and installs it as sdk-edge/dist/waitstate.wasm, beside the
// loaders that read or import it. Refuses a module over 16 KiB. Skips the build
// when the output is newer than every input (wasm-core/src/**, Cargo.toml, this
// script) unless --force.
//
//   node scripts/build-wasm.mjs            build when stale
//   node scripts/build-wasm.mjs --force    always build
//   node scripts/build-wasm.mjs --test     cargo test: the shared vectors and unit tests, natively
//
// Toolchains, in order: Debian's /usr/bin/cargo with RUSTC=/usr/bin/rustc, the
// wasm32 std of libstd-rust-dev-wasm32, and crates from Debian's librust-*-dev
// packages as a directory source (passed with --config: Cargo.toml stays an
// ordinary manifest, no crates.io needed); otherwise the `cargo` on PATH
// (rustup: `rustup target add wasm32-unknown-unknown`) with crates.io.
//
// Node builtins only, plus node_modules/.bin/wasm-opt (npm package binaryen).
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ROOT, bin, isMain, run } from "./lib.mjs";

const SCRIPT = fileURLToPath(import.meta.url);
const CRATE = path.join(ROOT, "wasm-core");
const TARGET_DIR = path.join(CRATE, "target");
const TRIPLE = "wasm32-unknown-unknown";
const RAW = path.join(TARGET_DIR, TRIPLE, "release", "waitstate_core.wasm");
const OPTIMIZED = path.join(TARGET_DIR, "waitstate.opt.wasm");
export const WASM_OUT = path.join(ROOT, "sdk-edge", "dist", "waitstate.wasm");
/** Every place a loader reads the module from (the node/deno entries read it, workerd imports it, beside the JS). */
export const WASM_OUTPUTS = [WASM_OUT];
export const WASM_LIMIT_BYTES = 16 * 1024;
const DEBIAN_REGISTRY = "/usr/share/cargo/registry";

const log = (message) => process.stderr.write(`[build-wasm] ${message}\n`);

/** Where a toolchain's rustc keeps a target's std, or null. */
function targetLibdir(rustc, env) {
  const r = spawnSync(rustc, ["--print", "target-libdir", "--target", TRIPLE], { encoding: "utf8", env: { ...process.env, ...env } });
  if (r.status !== 0 || r.error) return null;
  const dir = r.stdout.trim();
  return dir && existsSync(dir) && readdirSync(dir).some((f) => f.startsWith("libcore-")) ? dir : null;
}

function onPath(command) {
  const r = spawnSync(command, ["--version"], { encoding: "utf8" });
  return !r.error && r.status === 0;
}

/**
 * How to call cargo here. `wasm`: the toolchain must be able to build wasm32.
 * Returns { name, cargo, config, env } or throws with what to install.
 */
export function findToolchain({ wasm = true } = {}) {
  const debian = existsSync("/usr/bin/cargo") && existsSync("/usr/bin/rustc");
  if (debian) {
    const env = { RUSTC: "/usr/bin/rustc", RUSTDOC: "/usr/bin/rustdoc" };
    if (!wasm || targetLibdir("/usr/bin/rustc", env)) {
      const registry = existsSync(DEBIAN_REGISTRY);
      return {
        name: registry ? `Debian rustc, crates from ${DEBIAN_REGISTRY}` : "Debian rustc, crates.io",
        cargo: "/usr/bin/cargo",
        // Source replacement at build time: Cargo.toml and the crates.io names stay as they are.
        config: registry
          ? ["--config", 'source.crates-io.replace-with="debian-packages"', "--config", `source.debian-packages.directory="${DEBIAN_REGISTRY}"`]
          : [],
        env,
      };
    }
  }
  if (onPath("cargo") && (!wasm || targetLibdir("rustc", {}))) {
    return { name: "cargo on PATH, crates.io", cargo: "cargo", config: [], env: {} };
  }
  throw new Error(
    `no Rust toolchain here can build ${TRIPLE}.\n` +
      "  Debian/Ubuntu: apt-get install rustc cargo libstd-rust-dev-wasm32 lld librust-hmac-dev librust-sha2-dev librust-serde-json-dev\n" +
      `  rustup:        rustup target add ${TRIPLE}`,
  );
}

const COMMON_ENV = {
  CARGO_TARGET_DIR: TARGET_DIR,
  // 64 KiB of stack instead of wasm-ld's 1 MiB, so each instance's memory stays small.
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS: "-C link-arg=-zstack-size=65536",
  CARGO_TERM_COLOR: "never",
};

/** binaryen's wasm-opt, from the npm package. */
function wasmOpt() {
  const opt = bin("wasm-opt");
  if (!existsSync(opt)) throw new Error("wasm-opt not found: install the binaryen npm package (npm ci at the repo root)");
  return opt;
}

function newestInput() {
  let newest = statSync(SCRIPT).mtimeMs;
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else newest = Math.max(newest, statSync(full).mtimeMs);
    }
  };
  walk(path.join(CRATE, "src"));
  return Math.max(newest, statSync(path.join(CRATE, "Cargo.toml")).mtimeMs);
}

function isFresh() {
  const inputs = newestInput();
  return WASM_OUTPUTS.every((out) => existsSync(out) && statSync(out).mtimeMs > inputs);
}

/**
 * Builds and installs the module unless it is fresh. Resolves with
 * { path, size, built }; rejects with a readable Error (no toolchain, cargo or
 * wasm-opt failure, module over the limit — then nothing is installed).
 */
export async function buildWasm({ force = false } = {}) {
  if (!force && isFresh()) {
    const size = statSync(WASM_OUT).size;
    log(`sdk-edge/dist/waitstate.wasm is up to date: ${size} bytes`);
    return { path: WASM_OUT, size, built: false };
  }
  const tc = findToolchain({ wasm: true });
  log(`cargo build --release --target ${TRIPLE} (${tc.name})`);
  const cargo = await run(tc.cargo, ["build", "--release", "--target", TRIPLE, "--lib", ...tc.config], {
    cwd: CRATE,
    env: { ...COMMON_ENV, ...tc.env },
  });
  if (cargo.code !== 0 || !existsSync(RAW)) throw new Error(`cargo build for ${TRIPLE} failed (exit ${cargo.code})`);
  rmSync(OPTIMIZED, { force: true });
  const opt = await run(wasmOpt(), ["-Oz", "--strip-debug", "--strip-producers", RAW, "-o", OPTIMIZED]);
  if (opt.code !== 0 || !existsSync(OPTIMIZED)) throw new Error(`wasm-opt failed (exit ${opt.code})`);
  const size = statSync(OPTIMIZED).size;
  log(`waitstate.wasm: ${size} bytes after wasm-opt -Oz (limit ${WASM_LIMIT_BYTES}; ${statSync(RAW).size} before)`);
  if (size > WASM_LIMIT_BYTES) {
    // Not installed, so the next run does not take an oversized module for a fresh one.
    throw new Error(`the wasm module is ${size} bytes, over the ${WASM_LIMIT_BYTES}-byte limit`);
  }
  for (const out of WASM_OUTPUTS) {
    mkdirSync(path.dirname(out), { recursive: true });
    const tmp = `${out}.tmp-${process.pid}`;
    copyFileSync(OPTIMIZED, tmp);
    renameSync(tmp, out);
    log(`wrote ${path.relative(ROOT, out)}`);
  }
  return { path: WASM_OUT, size, built: true };
}

/** `cargo test` in wasm-core (vectors and unit tests, natively). Resolves with the exit code. */
export async function testWasmCore(extraArgs = []) {
  const tc = findToolchain({ wasm: false });
  log(`cargo test (${tc.name})`);
  const { code } = await run(tc.cargo, ["test", ...tc.config, ...extraArgs], { cwd: CRATE, env: { ...COMMON_ENV, ...tc.env } });
  return code;
}

if (isMain(import.meta.url)) {
  const args = process.argv.slice(2);
  try {
    if (args.includes("--test")) {
      const dashdash = args.indexOf("--");
      process.exitCode = await testWasmCore(dashdash >= 0 ? args.slice(dashdash) : []);
    } else {
      await buildWasm({ force: args.includes("--force") });
    }
  } catch (error) {
    log(`error: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  }
}
