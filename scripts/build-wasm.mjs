// Builds wasm-core for wasm32-unknown-unknown, optimises it with binaryen's
// wasm-opt (from npm) and writes sdk-edge/dist/waitstate.wasm, refusing a module
// over 16 KB. `--test` runs `cargo test` (the shared vectors, natively) instead.
//
// Toolchains, in order: Debian's rustc/cargo with libstd-rust-dev-wasm32 and
// crates from /usr/share/cargo/registry (no crates.io needed); otherwise the
// `cargo` on PATH (rustup: `rustup target add wasm32-unknown-unknown`).
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { ROOT, bin, log, run } from "./lib.mjs";

const CRATE = path.join(ROOT, "wasm-core");
const TARGET_DIR = path.join(CRATE, "target");
const RAW = path.join(TARGET_DIR, "wasm32-unknown-unknown", "release", "waitstate_core.wasm");
export const WASM_OUT = path.join(ROOT, "sdk-edge", "dist", "waitstate.wasm");
export const WASM_LIMIT_BYTES = 16 * 1024;
const DEBIAN_REGISTRY = "/usr/share/cargo/registry";

/** How to call cargo here: Debian's toolchain when it can build wasm32, else PATH. */
function toolchain() {
  const debian =
    existsSync("/usr/bin/cargo") &&
    existsSync("/usr/bin/rustc") &&
    existsSync("/usr/lib/rustlib/wasm32-unknown-unknown") &&
    existsSync(DEBIAN_REGISTRY);
  if (debian) {
    return {
      name: "Debian rustc + crates from " + DEBIAN_REGISTRY,
      cargo: "/usr/bin/cargo",
      // Crates come from Debian's packages as a directory source; Cargo.toml stays normal.
      config: [
        "--config",
        'source.crates-io.replace-with="debian-packages"',
        "--config",
        `source.debian-packages.directory="${DEBIAN_REGISTRY}"`,
      ],
      env: { RUSTC: "/usr/bin/rustc", RUSTDOC: "/usr/bin/rustdoc" },
    };
  }
  return { name: "cargo on PATH", cargo: "cargo", config: [], env: {} };
}

const COMMON_ENV = {
  CARGO_TARGET_DIR: TARGET_DIR,
  // 64 KiB of stack instead of wasm-ld's 1 MiB: each EdgeGate instance stays small.
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS: "-C link-arg=-zstack-size=65536",
  CARGO_TERM_COLOR: "never",
};

function newestInput() {
  let newest = statSync(new URL(import.meta.url)).mtimeMs;
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else newest = Math.max(newest, statSync(full).mtimeMs);
    }
  };
  walk(path.join(CRATE, "src"));
  newest = Math.max(newest, statSync(path.join(CRATE, "Cargo.toml")).mtimeMs);
  return newest;
}

/** Builds the module unless it is newer than every input. Exits the process on failure. */
export async function buildWasm({ force = false } = {}) {
  if (!force && existsSync(WASM_OUT) && statSync(WASM_OUT).mtimeMs > newestInput()) return WASM_OUT;
  const tc = toolchain();
  log(`building wasm-core for wasm32-unknown-unknown (${tc.name})`);
  const { code } = await run(
    tc.cargo,
    ["build", "--release", "--target", "wasm32-unknown-unknown", "--lib", ...tc.config],
    { cwd: CRATE, env: { ...COMMON_ENV, ...tc.env } },
  );
  if (code !== 0 || !existsSync(RAW)) {
    log(
      "cannot build wasm32-unknown-unknown. On Debian: apt-get install rustc cargo libstd-rust-dev-wasm32 lld " +
        "librust-hmac-dev librust-sha2-dev librust-serde-json-dev; with rustup: rustup target add wasm32-unknown-unknown",
    );
    process.exit(code || 1);
  }
  mkdirSync(path.dirname(WASM_OUT), { recursive: true });
  const opt = await run(bin("wasm-opt"), ["-Oz", "--strip-debug", "--strip-producers", RAW, "-o", WASM_OUT]);
  if (opt.code !== 0) {
    log("wasm-opt failed; is binaryen installed (npm ci)?");
    process.exit(opt.code);
  }
  const size = statSync(WASM_OUT).size;
  log(`sdk-edge/dist/waitstate.wasm: ${size} bytes (limit ${WASM_LIMIT_BYTES})`);
  if (size > WASM_LIMIT_BYTES) {
    log(`the wasm module is over ${WASM_LIMIT_BYTES} bytes`);
    process.exit(1);
  }
  return WASM_OUT;
}

/** `cargo test`: the shared vectors and unit tests, natively. */
export async function testWasmCore() {
  const tc = toolchain();
  log(`cargo test in wasm-core (${tc.name})`);
  const { code } = await run(tc.cargo, ["test", ...tc.config], { cwd: CRATE, env: { ...COMMON_ENV, ...tc.env } });
  return code;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv.includes("--test")) process.exit(await testWasmCore());
  await buildWasm({ force: process.argv.includes("--force") });
}

