#!/usr/bin/env node
// The wasm module of @waitstate/edge is part of the repository
// (sdk-edge/wasm/waitstate.wasm) with a manifest recording a sha256 over every
// source that builds it, so a machine with only Node runs everything, and a
// module that no longer matches its sources is caught (`--check`, run by npm test).
//
//   node scripts/build-wasm.mjs            rebuild from rust/ (needs Rust): updates module + manifest, installs it
//   node scripts/build-wasm.mjs --check    does the committed module match its sources? (Node only)
//   node scripts/build-wasm.mjs --install  copy the committed module to sdk-edge/dist (Node only; setup does this)
//   node scripts/build-wasm.mjs --test     cargo test in the workspace (vectors and unit tests, natively)
//
// The build: cargo build of waitstate-wasm for wasm32-unknown-unknown (release:
// lto, codegen-units 1, panic abort, strip — see rust/Cargo.toml), then
// binaryen's wasm-opt -Oz; a module over 16 KiB is refused.
//
// Toolchains, in order: Debian's /usr/bin/cargo with RUSTC=/usr/bin/rustc, the
// wasm32 std of libstd-rust-dev-wasm32, and crates from Debian's librust-*-dev
// packages as a directory source passed with --config (rust/Cargo.toml and
// Cargo.lock stay ordinary; no crates.io needed); otherwise the `cargo` on PATH
// (rustup: `rustup target add wasm32-unknown-unknown`) with crates.io.
//
// Node builtins only, plus node_modules/.bin/wasm-opt (npm package binaryen).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { ROOT, bin, isMain, run } from "./lib.mjs";

export const RUST_DIR = path.join(ROOT, "rust");
const TARGET_DIR = path.join(RUST_DIR, "target");
const TRIPLE = "wasm32-unknown-unknown";
const RAW = path.join(TARGET_DIR, TRIPLE, "release", "waitstate_wasm.wasm");
const OPTIMIZED = path.join(TARGET_DIR, "waitstate.opt.wasm");
/** The committed module and its manifest. */
export const WASM_COMMITTED = path.join(ROOT, "sdk-edge", "wasm", "waitstate.wasm");
export const WASM_MANIFEST = path.join(ROOT, "sdk-edge", "wasm", "manifest.json");
/** Where the loaders read or import it: beside the compiled JS. */
export const WASM_OUT = path.join(ROOT, "sdk-edge", "dist", "waitstate.wasm");
export const WASM_LIMIT_BYTES = 16 * 1024;
const DEBIAN_REGISTRY = "/usr/share/cargo/registry";
/** What installs everything the Rust suites need on Debian/Ubuntu. */
export const RUST_INSTALL_COMMAND =
  "sudo apt-get install rustc cargo libstd-rust-dev-wasm32 lld rust-clippy rustfmt librust-hmac-dev librust-sha2-dev librust-serde-json-dev librust-indexmap-dev " +
  "librust-tokio-dev librust-reqwest-dev librust-hyper-dev librust-arc-swap-dev librust-dashmap-dev librust-rustc-hash-dev librust-rand-dev librust-futures-dev " +
  "librust-criterion-dev librust-httparse-dev librust-sha1-dev librust-base64-dev librust-native-tls-dev librust-tokio-native-tls-dev libssl-dev pkg-config";
const STALE = "stale wasm: run npm run build:wasm and commit";

const log = (message) => process.stderr.write(`[build-wasm] ${message}\n`);
const sha256 = (data) => createHash("sha256").update(data).digest("hex");

/** Every file whose change can change the module, relative to the repository, sorted. */
export function wasmSources() {
  const files = ["rust/Cargo.toml", "rust/Cargo.lock", "rust/core/Cargo.toml", "rust/wasm/Cargo.toml", "scripts/build-wasm.mjs"];
  const walk = (dir) => {
    for (const entry of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(rel);
      else files.push(rel);
    }
  };
  walk("rust/core/src");
  walk("rust/wasm/src");
  return files.sort();
}

/** sha256 over each source's path and text (line endings normalised, so a Windows checkout hashes alike). */
export function sourceHash() {
  const h = createHash("sha256");
  for (const rel of wasmSources()) {
    const text = readFileSync(path.join(ROOT, rel), "utf8").replace(/\r\n/g, "\n");
    h.update(`${rel}\0${text}\0`);
  }
  return h.digest("hex");
}

/** The ABI version a module reports (`ws_abi_version`), or null when it has none. */
export function abiVersionOf(bytes) {
  const exports = new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports;
  return typeof exports.ws_abi_version === "function" ? exports.ws_abi_version() : null;
}

/**
 * Does the committed module match its sources and its manifest? Resolves
 * { ok, message }; Node only, so it runs everywhere, CI included.
 */
export function checkCommitted() {
  if (!existsSync(WASM_COMMITTED) || !existsSync(WASM_MANIFEST)) {
    return { ok: false, message: `${path.relative(ROOT, WASM_COMMITTED)} or its manifest is missing: run npm run build:wasm and commit` };
  }
  const manifest = JSON.parse(readFileSync(WASM_MANIFEST, "utf8"));
  const bytes = readFileSync(WASM_COMMITTED);
  if (sha256(bytes) !== manifest.sha256 || bytes.length !== manifest.bytes) {
    return { ok: false, message: `${path.relative(ROOT, WASM_COMMITTED)} is not the module its manifest records: ${STALE}` };
  }
  const hash = sourceHash();
  if (hash !== manifest.sources?.sha256) {
    return {
      ok: false,
      message: `${STALE} (the sources hash to ${hash.slice(0, 12)}…, the module was built from ${String(manifest.sources?.sha256).slice(0, 12)}…)`,
    };
  }
  return { ok: true, message: `sdk-edge/wasm/waitstate.wasm matches its sources (${manifest.bytes} bytes, ABI ${manifest.abiVersion})` };
}

/** Copies the committed module beside the loaders (no Rust involved). Returns { path, size, copied }. */
export function installWasm() {
  if (!existsSync(WASM_COMMITTED))
    throw new Error(`${path.relative(ROOT, WASM_COMMITTED)} is missing: run npm run build:wasm (needs Rust)`);
  const bytes = readFileSync(WASM_COMMITTED);
  const same = existsSync(WASM_OUT) && sha256(readFileSync(WASM_OUT)) === sha256(bytes);
  if (!same) {
    mkdirSync(path.dirname(WASM_OUT), { recursive: true });
    const tmp = `${WASM_OUT}.tmp-${process.pid}`;
    writeFileSync(tmp, bytes);
    renameSync(tmp, WASM_OUT);
  }
  return { path: WASM_OUT, size: bytes.length, copied: !same };
}

/** Runs `command --version`: true when it exists and works (a file bound over /dev/null does not). */
function works(command, env = {}) {
  const r = spawnSync(command, ["--version"], { encoding: "utf8", env: { ...process.env, ...env } });
  return !r.error && r.status === 0;
}

/** Where a toolchain's rustc keeps a target's std, or null. */
function targetLibdir(rustc, env) {
  const r = spawnSync(rustc, ["--print", "target-libdir", "--target", TRIPLE], { encoding: "utf8", env: { ...process.env, ...env } });
  if (r.status !== 0 || r.error) return null;
  const dir = r.stdout.trim();
  return dir && existsSync(dir) && readdirSync(dir).some((f) => f.startsWith("libcore-")) ? dir : null;
}

/**
 * Debian's crates as a directory source whose checksums agree with Cargo.lock.
 * Debian's `.cargo-checksum.json` says "Could not get crate checksum" for some
 * crates; a lock holding that string would fail on crates.io, and one holding
 * the real checksum fails against Debian's files. So cargo reads a mirror of
 * the registry (symlinks) in which those crates have no checksum: the lock then
 * has no checksum line for them (crates.io fills it in), and a real one for the rest.
 */
function debianMirror() {
  const mirror = path.join(TARGET_DIR, "debian-registry");
  const crates = readdirSync(DEBIAN_REGISTRY).sort();
  const stamp = path.join(mirror, ".crates");
  if (existsSync(stamp) && readFileSync(stamp, "utf8") === crates.join("\n")) return mirror;
  rmSync(mirror, { recursive: true, force: true });
  for (const crate of crates) {
    const from = path.join(DEBIAN_REGISTRY, crate);
    const to = path.join(mirror, crate);
    const checksumFile = path.join(from, ".cargo-checksum.json");
    if (!existsSync(checksumFile)) continue;
    mkdirSync(to, { recursive: true });
    for (const entry of readdirSync(from)) {
      if (entry !== ".cargo-checksum.json") symlinkSync(path.join(from, entry), path.join(to, entry));
    }
    let pkg = null;
    try {
      const declared = JSON.parse(readFileSync(checksumFile, "utf8")).package;
      if (typeof declared === "string" && /^[0-9a-f]{64}$/.test(declared)) pkg = declared;
    } catch {
      // An unreadable checksum file: no checksum, like Debian's placeholder.
    }
    writeFileSync(path.join(to, ".cargo-checksum.json"), JSON.stringify({ package: pkg, files: {} }));
  }
  writeFileSync(stamp, crates.join("\n"));
  return mirror;
}

/**
 * How to call cargo here. `wasm`: the toolchain must be able to build wasm32.
 * Returns { name, cargo, config, env }, or null when there is none.
 */
export function findToolchain({ wasm = true } = {}) {
  // Debian's cargo looks for subcommands (clippy, fmt) in CARGO_HOME/bin first:
  // a private CARGO_HOME keeps a rustup install in ~/.cargo out of a Debian build.
  const env = {
    RUSTC: "/usr/bin/rustc",
    RUSTDOC: "/usr/bin/rustdoc",
    CARGO_HOME: path.join(TARGET_DIR, "cargo-home"),
    PATH: `/usr/bin:${process.env.PATH ?? ""}`,
  };
  if (works("/usr/bin/cargo", env) && works("/usr/bin/rustc", env) && (!wasm || targetLibdir("/usr/bin/rustc", env))) {
    const registry = existsSync(DEBIAN_REGISTRY);
    return {
      name: registry ? `Debian rustc, crates from ${DEBIAN_REGISTRY}` : "Debian rustc, crates.io",
      cargo: "/usr/bin/cargo",
      config: registry
        ? [
            "--offline",
            "--config",
            'source.crates-io.replace-with="debian-packages"',
            "--config",
            `source.debian-packages.directory="${debianMirror()}"`,
          ]
        : [],
      env,
    };
  }
  if (works("cargo") && works("rustc") && (!wasm || targetLibdir("rustc", {}))) {
    return { name: "cargo on PATH, crates.io", cargo: "cargo", config: [], env: {} };
  }
  return null;
}

function requireToolchain(options) {
  const tc = findToolchain(options);
  if (tc === null) {
    throw new Error(
      `no Rust toolchain here can build ${options.wasm ? TRIPLE : "the workspace"}.\n  Debian/Ubuntu: ${RUST_INSTALL_COMMAND}\n  rustup:        rustup target add ${TRIPLE}`,
    );
  }
  return tc;
}

const COMMON_ENV = {
  CARGO_TARGET_DIR: TARGET_DIR,
  // 64 KiB of stack instead of wasm-ld's 1 MiB, so each instance's memory stays small.
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS: "-C link-arg=-zstack-size=65536",
  CARGO_TERM_COLOR: "never",
};

/** Runs a cargo subcommand in the workspace (`["test", …]`, `["clippy", …]`). Resolves { code, output }. */
export async function cargo(args, { tc = requireToolchain({ wasm: false }), capture = false } = {}) {
  // Options that must follow the subcommand (cargo parses --config after it too).
  const [sub, ...rest] = args;
  const config = sub === "fmt" ? [] : tc.config; // cargo-fmt reads no registry and takes no --config
  return run(tc.cargo, [sub, ...config, ...rest], { cwd: RUST_DIR, env: { ...COMMON_ENV, ...tc.env }, capture });
}

/** Whether `cargo <sub>` exists for the toolchain (clippy, fmt are separate packages). */
export function hasCargoSubcommand(tc, sub) {
  const r = spawnSync(tc.cargo, [sub, "--version"], { encoding: "utf8", cwd: RUST_DIR, env: { ...process.env, ...COMMON_ENV, ...tc.env } });
  return !r.error && r.status === 0;
}

/** binaryen's wasm-opt, from the npm package. */
function wasmOpt() {
  const opt = bin("wasm-opt");
  if (!existsSync(opt)) throw new Error("wasm-opt not found: install the binaryen npm package (npm ci at the repo root)");
  return opt;
}

/**
 * Rebuilds the module from rust/, then writes it and its manifest to
 * sdk-edge/wasm/ and installs it. Rejects with a readable Error (no toolchain,
 * cargo or wasm-opt failure, module over the limit — then nothing is written).
 */
export async function buildWasm() {
  const tc = requireToolchain({ wasm: true });
  const hash = sourceHash();
  log(`cargo build -p waitstate-wasm --release --target ${TRIPLE} (${tc.name})`);
  const built = await cargo(["build", "-p", "waitstate-wasm", "--release", "--target", TRIPLE, "--lib"], { tc });
  if (built.code !== 0 || !existsSync(RAW)) throw new Error(`cargo build for ${TRIPLE} failed (exit ${built.code})`);
  rmSync(OPTIMIZED, { force: true });
  const opt = await run(wasmOpt(), ["-Oz", "--strip-debug", "--strip-producers", RAW, "-o", OPTIMIZED]);
  if (opt.code !== 0 || !existsSync(OPTIMIZED)) throw new Error(`wasm-opt failed (exit ${opt.code})`);
  const bytes = readFileSync(OPTIMIZED);
  log(`waitstate.wasm: ${bytes.length} bytes after wasm-opt -Oz (limit ${WASM_LIMIT_BYTES}; ${statSync(RAW).size} before)`);
  if (bytes.length > WASM_LIMIT_BYTES) throw new Error(`the wasm module is ${bytes.length} bytes, over the ${WASM_LIMIT_BYTES}-byte limit`);
  const rustc = spawnSync(tc.env.RUSTC ?? "rustc", ["--version"], { encoding: "utf8" }).stdout?.trim() ?? "rustc";
  const manifest = {
    module: "waitstate.wasm",
    bytes: bytes.length,
    sha256: sha256(bytes),
    abiVersion: abiVersionOf(bytes),
    sources: { sha256: hash, files: wasmSources() },
    builtWith: `${rustc}; ${tc.name}; wasm-opt -Oz`,
    rebuild: "npm run build:wasm (needs Rust); npm test fails while the sources hash differs from sources.sha256",
  };
  mkdirSync(path.dirname(WASM_COMMITTED), { recursive: true });
  copyFileSync(OPTIMIZED, WASM_COMMITTED);
  writeFileSync(WASM_MANIFEST, `${JSON.stringify(manifest, null, 2)}\n`);
  log(`wrote ${path.relative(ROOT, WASM_COMMITTED)} and manifest.json (ABI ${manifest.abiVersion}, sources ${hash.slice(0, 12)}…)`);
  installWasm();
  return { path: WASM_COMMITTED, size: bytes.length };
}

if (isMain(import.meta.url)) {
  const args = process.argv.slice(2);
  try {
    if (args.includes("--check")) {
      const { ok, message } = checkCommitted();
      (ok ? log : (m) => log(`error: ${m}`))(message);
      process.exitCode = ok ? 0 : 1;
    } else if (args.includes("--install")) {
      const { size, copied } = installWasm();
      log(`${copied ? "installed" : "up to date:"} sdk-edge/dist/waitstate.wasm (${size} bytes)`);
    } else if (args.includes("--test")) {
      const dashdash = args.indexOf("--");
      process.exitCode = (await cargo(["test", "--workspace", "--all-features", ...(dashdash >= 0 ? args.slice(dashdash) : [])])).code;
    } else {
      await buildWasm();
    }
  } catch (error) {
    log(`error: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  }
}
