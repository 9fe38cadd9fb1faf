#!/usr/bin/env node
// The Python SDK (sdk-python/): builds its native extension `waitstate._native`
// (sdk-python/native, PyO3 over the Rust crate rust/waitstate) in place with
// setuptools-rust and Debian's /usr/bin/python3, and runs its tests with pytest.
//
//   node scripts/build-python.mjs          build the extension in place (sdk-python/waitstate/_native*.so)
//   node scripts/build-python.mjs --test   build, then pytest (arguments after -- go to pytest)
//   node scripts/build-python.mjs --check  is everything here to build and test it? (exit 0/1, says what is missing)
//
// Debian's python3 is the interpreter its python3-* packages (fastapi, flask,
// django, pytest, httpx, setuptools-rust) serve; a `python3` first on PATH
// (pyenv, a venv) may be another. Cargo runs offline over the crates of
// /usr/share/cargo/registry (the mirror build-wasm.mjs makes), through a
// private CARGO_HOME whose config.toml replaces crates.io: setuptools-rust
// calls cargo itself, so the source replacement cannot be passed as --config.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ROOT, isMain, log, run } from "./lib.mjs";
import { buildAgent } from "./build-agent.mjs";
import { findToolchain } from "./build-wasm.mjs";

export const PYTHON = "/usr/bin/python3";
export const SDK_DIR = path.join(ROOT, "sdk-python");
const NATIVE_TARGET = path.join(SDK_DIR, "native", "target");
/** What installs everything the Python suite needs on Debian/Ubuntu. */
export const PYTHON_INSTALL_COMMAND =
  "sudo apt-get install python3 python3-dev python3-setuptools-rust python3-pytest python3-fastapi python3-flask python3-django python3-httpx python3-uvicorn librust-pyo3-dev librust-tokio-dev librust-reqwest-dev librust-arc-swap-dev librust-dashmap-dev rustc cargo";
const MODULES = ["setuptools_rust", "pytest", "fastapi", "flask", "django", "httpx"];

/** null when the suite can run here, else why not. */
export function missing() {
  if (!existsSync(PYTHON)) return `${PYTHON} is not installed`;
  const probe = spawnSync(PYTHON, ["-c", `import ${MODULES.join(", ")}, sysconfig; print(sysconfig.get_paths()["include"])`], {
    encoding: "utf8",
  });
  if (probe.error || probe.status === null) return `${PYTHON} cannot be run (${probe.error?.message ?? "killed"})`;
  if (probe.status !== 0) return `${PYTHON} lacks a module: ${(probe.stderr || "").trim().split("\n").pop()}`;
  if (!existsSync(path.join(probe.stdout.trim(), "Python.h"))) return "the CPython headers (python3-dev) are not installed";
  if (findToolchain({ wasm: false }) === null) return "no Rust toolchain (cargo, rustc) here";
  if (!existsSync(path.join(ROOT, "rust", "waitstate", "Cargo.toml"))) return "the Rust crate rust/waitstate is not in this tree";
  return null;
}

/** The environment cargo gets under setuptools-rust. */
function cargoEnv() {
  const tc = findToolchain({ wasm: false });
  if (tc === null) throw new Error("no Rust toolchain (cargo, rustc) here");
  const cargoHome = path.join(NATIVE_TARGET, "cargo-home");
  mkdirSync(cargoHome, { recursive: true });
  const dirIndex = tc.config.findIndex((a) => a.startsWith("source.debian-packages.directory="));
  const config =
    dirIndex >= 0
      ? `[source.crates-io]\nreplace-with = "debian-packages"\n[source.debian-packages]\n${tc.config[dirIndex].slice("source.debian-packages.".length)}\n[net]\noffline = true\n`
      : "";
  writeFileSync(path.join(cargoHome, "config.toml"), config);
  return {
    ...tc.env,
    CARGO: tc.cargo,
    CARGO_HOME: cargoHome,
    CARGO_TARGET_DIR: NATIVE_TARGET,
    CARGO_TERM_COLOR: "never",
    PYO3_PYTHON: PYTHON,
    // the extension is ours alone: never let a user-site or venv module shadow the Debian packages
    PYTHONNOUSERSITE: "1",
  };
}

/** Builds sdk-python/waitstate/_native*.so in place. Resolves the exit code. */
export async function buildNative() {
  log(`building the Python extension waitstate._native (${PYTHON}, setuptools-rust)`);
  const { code } = await run(PYTHON, ["setup.py", "--quiet", "build_ext", "--inplace"], { cwd: SDK_DIR, env: cargoEnv() });
  const built = readdirSync(path.join(SDK_DIR, "waitstate")).some((f) => f.startsWith("_native") && f.endsWith(".so"));
  return code === 0 && built ? 0 : code || 1;
}

/**
 * Agent mode's tests run against the Rust agent, `waitstate-agent`: built here
 * (the `dev` profile, as the agent's own tests do) and handed to pytest by path.
 * Without a Rust toolchain they skip saying why; a failed build fails them.
 */
async function agentEnv() {
  try {
    const built = await buildAgent({ profile: "dev" });
    return built.binary ? { WAITSTATE_AGENT_BIN: built.binary } : { WAITSTATE_AGENT_SKIP: built.skipped };
  } catch (error) {
    log(error instanceof Error ? error.message : String(error));
    return { WAITSTATE_AGENT_BUILD_FAILED: "cargo build -p waitstate-agent failed (see above)" };
  }
}

/** Builds the agent, then pytest over sdk-python/tests. Resolves { code, output }. */
export async function pytest(args = [], { capture = false } = {}) {
  return run(PYTHON, ["-m", "pytest", "-p", "no:cacheprovider", ...args], {
    cwd: SDK_DIR,
    env: { PYTHONNOUSERSITE: "1", PYTHONDONTWRITEBYTECODE: "1", ...(await agentEnv()) },
    capture,
  });
}

if (isMain(import.meta.url)) {
  const args = process.argv.slice(2);
  const why = missing();
  if (args.includes("--check")) {
    log(why === null ? "the Python SDK can be built and tested here" : `cannot build the Python SDK: ${why}\n  ${PYTHON_INSTALL_COMMAND}`);
    process.exit(why === null ? 0 : 1);
  }
  if (why !== null) {
    log(`cannot build the Python SDK: ${why}\n  ${PYTHON_INSTALL_COMMAND}`);
    process.exit(1);
  }
  let code = await buildNative();
  if (code === 0 && args.includes("--test")) {
    const dashdash = args.indexOf("--");
    code = (await pytest(dashdash >= 0 ? args.slice(dashdash + 1) : [])).code;
  }
  process.exit(code);
}
