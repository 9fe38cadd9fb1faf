// `npm test`: sets the clone up (install, wasm, TypeScript build), then runs every
// suite — Node, workerd, Rust — even when an earlier one fails, and ends with
// one summary line: "total: N passed, N failed". Without a Rust toolchain the
// Rust suites are listed as skipped, with the command that installs it; the
// check that the committed wasm module matches its sources needs only Node.
import { existsSync, readFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setup } from "./setup.mjs";
import { ROOT, bin, log, run } from "./lib.mjs";

/** vitest configs, in order: Node first, then the suites that run inside workerd. */
const VITEST_SUITES = [
  ["node (protocol, sdk-edge, sdk-node)", "vitest.config.ts"],
  ["workerd: TypeScript gate + histogram", "protocol/test/workerd/vitest.config.ts"],
  ["workerd: @waitstate/edge (wasm)", "sdk-edge/test/workerd/vitest.config.ts"],
  ["workerd: control-plane Worker", "workers/test/vitest.config.ts"],
  ["e2e: real control plane (wrangler dev)", "e2e/vitest.config.ts"],
  ["e2e: edge runtime matrix (Node, Deno, Bun, Vercel Edge, Workers)", "e2e/runtimes/vitest.config.ts"],
];

await setup();

/** Test code is TypeScript too: each suite's tsconfig is type-checked (tsc -b already checked src/). */
const TEST_TSCONFIGS = [
  "protocol/test",
  "workers/test",
  "sdk-edge/test",
  "sdk-node/test",
  "rust/test",
  "e2e",
  "examples/edge-worker",
].filter((dir) => existsSync(path.join(ROOT, dir, "tsconfig.json")));

const scratch = mkdtempSync(path.join(tmpdir(), "waitstate-test-"));
const results = [];
/** Failed tests, named again at the very end: CI logs are often read from their tail. */
const failures = [];
const only = process.argv.slice(2);

if (!only.length || only.includes("typecheck")) {
  log("suite: type-check test code");
  let passed = 0;
  let failed = 0;
  for (const dir of TEST_TSCONFIGS) {
    const { code } = await run(bin("tsc"), ["-p", dir]);
    if (code === 0) passed++;
    else failed++;
  }
  results.push({ name: "typecheck: test code", passed, failed });
}

if (!only.length || only.includes("lint")) {
  // One formatter and linter for the TypeScript and JavaScript (biome.jsonc): `npm run format` fixes the formatting.
  log("suite: lint and format (biome check)");
  const { code } = await run(bin("biome"), ["check", "--max-diagnostics=50", "."]);
  results.push({ name: "lint: biome check", passed: code === 0 ? 1 : 0, failed: code === 0 ? 0 : 1 });
  if (code !== 0)
    failures.push({ suite: "lint", test: "biome check", message: "run `npm run format` (formatting) and read the lint findings above" });
}

for (const [name, config] of VITEST_SUITES) {
  if (only.length && !only.some((o) => config.includes(o))) continue;
  log(`suite: ${name}`);
  const report = path.join(scratch, `${results.length}.json`);
  const { code } = await run(bin("vitest"), [
    "run",
    "--config",
    config,
    "--reporter=default",
    "--reporter=json",
    `--outputFile.json=${report}`,
  ]);
  let passed = 0;
  let failed = 0;
  try {
    const json = JSON.parse(readFileSync(report, "utf8"));
    passed = json.numPassedTests;
    failed = json.numFailedTests;
    for (const file of json.testResults ?? []) {
      const where = path.relative(ROOT, file.name ?? "");
      for (const t of file.assertionResults ?? []) {
        if (t.status === "failed") failures.push({ suite: name, test: `${where} > ${t.fullName}`, message: t.failureMessages?.[0] ?? "" });
      }
      // A file that failed outside any test (import error, hook timeout) has no failed assertion to name.
      if (file.status === "failed" && !(file.assertionResults ?? []).some((t) => t.status === "failed")) {
        failures.push({ suite: name, test: where, message: file.message ?? "" });
      }
    }
  } catch {
    failed = 1; // no report: the run itself broke
  }
  if (code !== 0 && failed === 0) failed = 1;
  results.push({ name, passed, failed });
}

/** Rust suites: `npm test -- rust` runs them all, `-- clippy` one. */
const RUST_SUITES = [
  ["rust: committed wasm matches rust/ sources", "rust/wasm-fresh"],
  ["rust: cargo test (vectors natively)", "rust/cargo-test"],
  ["rust: cargo fmt --check", "rust/fmt"],
  ["rust: cargo clippy -D warnings", "rust/clippy"],
];
const selected = RUST_SUITES.filter(([, key]) => !only.length || only.some((o) => key.includes(o)));
if (selected.length) {
  const wasm = await import("./build-wasm.mjs");
  const tc = wasm.findToolchain({ wasm: false });
  for (const [name, key] of selected) {
    log(`suite: ${name}`);
    if (key === "rust/wasm-fresh") {
      const { ok, message } = wasm.checkCommitted();
      log(message);
      if (!ok) failures.push({ suite: "rust", test: name, message });
      results.push({ name, passed: ok ? 1 : 0, failed: ok ? 0 : 1 });
      continue;
    }
    const sub = { "rust/cargo-test": "test", "rust/fmt": "fmt", "rust/clippy": "clippy" }[key];
    if (tc === null || (sub !== "test" && !wasm.hasCargoSubcommand(tc, sub))) {
      const why = tc === null ? "no Rust toolchain (cargo, rustc) here" : `cargo ${sub} is not installed`;
      results.push({ name, passed: 0, failed: 0, skipped: `${why}; install: ${wasm.RUST_INSTALL_COMMAND}` });
      continue;
    }
    const args = {
      "rust/cargo-test": ["test", "--workspace", "--all-features", "--no-fail-fast"],
      "rust/fmt": ["fmt", "--all", "--check"],
      "rust/clippy": ["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"],
    }[key];
    const { code, output } = await wasm.cargo(args, { tc, capture: true });
    let passed = 0;
    let failed = 0;
    if (sub === "test") {
      for (const m of output.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed/g)) {
        passed += Number(m[1]);
        failed += Number(m[2]);
      }
      for (const m of output.matchAll(/^test (\S+) \.\.\. FAILED$/gm)) failures.push({ suite: "rust", test: m[1], message: "" });
    } else if (code === 0) {
      passed = 1;
    } else {
      failures.push({ suite: "rust", test: name, message: output.split("\n").find((l) => /^(error|Diff in)/.test(l)) ?? "" });
    }
    if (code !== 0 && failed === 0) failed = 1;
    results.push({ name, passed, failed });
  }
}

/** The Python SDK (sdk-python): its native extension built with Debian's python3, then pytest. `npm test -- python`. */
if (!only.length || only.some((o) => "sdk-python/pytest".includes(o))) {
  const name = "python: sdk-python (pytest)";
  log(`suite: ${name}`);
  const py = await import("./build-python.mjs");
  const why = py.missing();
  if (why !== null) {
    results.push({ name, passed: 0, failed: 0, skipped: `${why}; install: ${py.PYTHON_INSTALL_COMMAND}` });
  } else if ((await py.buildNative()) !== 0) {
    failures.push({ suite: "python", test: "build the extension waitstate._native", message: "setup.py build_ext failed (see above)" });
    results.push({ name, passed: 0, failed: 1 });
  } else {
    const { code, output } = await py.pytest(["-rfE"], { capture: true });
    const count = (word) =>
      Number(
        new RegExp(`(\\d+) ${word}`).exec(
          output
            .split("\n")
            .filter((l) => /^=+ .* in [\d.]+s/.test(l))
            .pop() ?? "",
        )?.[1] ?? 0,
      );
    const passed = count("passed");
    let failed = count("failed") + count("error");
    for (const m of output.matchAll(/^(?:FAILED|ERROR) (\S+)(?: - (.*))?$/gm))
      failures.push({ suite: "python", test: m[1], message: m[2] ?? "" });
    if (code !== 0 && failed === 0) failed = 1;
    results.push({ name, passed, failed });
  }
}

rmSync(scratch, { recursive: true, force: true });

const width = Math.max(...results.map((r) => r.name.length));
process.stdout.write("\n");
if (failures.length) {
  process.stdout.write(`failed tests (${failures.length}):\n`);
  for (const f of failures.slice(0, 10)) {
    const first =
      f.message
        // biome-ignore lint/suspicious/noControlCharactersInRegex: strips colour codes from vitest's messages
        .replace(/\x1b\[[0-9;]*m/g, "")
        .split("\n")
        .find((line) => line.trim()) ?? "";
    process.stdout.write(`  ✗ [${f.suite}] ${f.test}\n      ${first.trim().slice(0, 300)}\n`);
  }
  if (failures.length > 10) process.stdout.write(`  … and ${failures.length - 10} more (see above)\n`);
  process.stdout.write("\n");
}
for (const r of results) {
  if (r.skipped) process.stdout.write(`skip  ${r.name.padEnd(width)}  skipped: ${r.skipped}\n`);
  else process.stdout.write(`${r.failed ? "FAIL" : "ok  "}  ${r.name.padEnd(width)}  ${r.passed} passed, ${r.failed} failed\n`);
}
const passed = results.reduce((n, r) => n + r.passed, 0);
const failed = results.reduce((n, r) => n + r.failed, 0);
process.stdout.write(`total: ${passed} passed, ${failed} failed\n`);
process.exit(failed === 0 && results.length > 0 ? 0 : 1);
