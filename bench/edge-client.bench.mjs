// `npm run bench` (or `npm run bench:edge`): the edge client's targets, in one
// run, as medians over interleaved rounds. Never asserted in tests: this
// machine is shared and noisy.
// - gate() through the full @waitstate/edge client vs the TypeScript gate
//   (protocol/src/gate.ts), each counting per tag; the client reads the clock
//   (Date.now()) on every call, so the TypeScript gate is timed both with a
//   clock read per call and with a fixed `now` (gate.bench.mjs's baseline).
// - sync() when nothing is due (a synced client between pulses).
// - the package's wasm + JavaScript, minified by esbuild (the default entry
//   and everything it imports, as a bundler ships it).
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { LocalGate } from "@waitstate/protocol/gate";
import { WaitState } from "@waitstate/edge";
import { median, startPolicyStub, stubUrl } from "./support.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const CALLS = Number(process.env.BENCH_CALLS ?? 2_000_000);
const SYNC_CALLS = Number(process.env.BENCH_SYNC_CALLS ?? 1_000_000);
const TAGS = ["free", "pro", "enterprise", "internal"];
const WEIGHTS = [1, 3, 7, 12];
const POLICY = {
  version: 1,
  globalMaxWeight: 10,
  tagMaxWeights: { free: 0, pro: 5, internal: null },
  killSignal: false,
  status: "ok",
  // Long enough that nothing falls due while sync() is timed.
  pulseInterval: 3_600_000,
  leaseDurationSeconds: 86_400,
};

let sink = 0;

const tsGate = new LocalGate();
tsGate.update({ ...POLICY, issuedAt: Date.now() }, Date.now());
function tsGateClock(n) {
  let allowed = 0;
  for (let i = 0; i < n; i++) if (tsGate.gate(TAGS[i & 3], WEIGHTS[i & 3], Date.now()).allowed) allowed++;
  sink += allowed;
}
const NOW = Date.now();
function tsGateFixedNow(n) {
  let allowed = 0;
  for (let i = 0; i < n; i++) if (tsGate.gate(TAGS[i & 3], WEIGHTS[i & 3], NOW).allowed) allowed++;
  sink += allowed;
}

// A control plane stub in this process: the key exchange and pulses answered with POLICY, so the client is synced.
const stub = await startPolicyStub(POLICY);
const client = new WaitState({
  publishKey: "pk_bench",
  secretKey: "sk_bench",
  baseUrl: stubUrl(stub),
  onError: (e) => {
    throw e;
  },
});
if (!(await client.ready(5000))) throw new Error("the edge client did not sync with the stub control plane");
function edgeClientGate(n) {
  let allowed = 0;
  for (let i = 0; i < n; i++) if (client.gate(TAGS[i & 3], WEIGHTS[i & 3]).allowed) allowed++;
  sink += allowed;
}
async function edgeClientSyncIdle(n) {
  for (let i = 0; i < n - 1; i++) client.sync();
  await client.sync();
}

const SUBJECTS = [
  { name: "TypeScript gate (LocalGate), Date.now() per call", fn: tsGateClock, calls: CALLS },
  { name: "TypeScript gate (LocalGate), fixed now", fn: tsGateFixedNow, calls: CALLS },
  { name: "@waitstate/edge WaitState.gate() (full client)", fn: edgeClientGate, calls: CALLS },
  { name: "@waitstate/edge WaitState.sync(), nothing due", fn: edgeClientSyncIdle, calls: SYNC_CALLS },
];

async function timeRound(subject) {
  const start = process.hrtime.bigint();
  await subject.fn(subject.calls);
  return Number(process.hrtime.bigint() - start) / subject.calls;
}

for (const s of SUBJECTS) for (let k = 0; k < 3; k++) await s.fn(Math.min(s.calls, 200_000));
const requestsBefore = client.status().pendingPulses;
const samples = new Map(SUBJECTS.map((s) => [s.name, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const s of SUBJECTS) samples.get(s.name).push(await timeRound(s));
}
const status = client.status();
stub.close();
if (status.pendingPulses !== requestsBefore || status.nextSyncAt <= Date.now()) {
  throw new Error("something fell due while sync() was timed: the idle figure would not be idle");
}

// The package as a bundler ships it: the default entry (init() + everything) minified, plus the wasm module.
const bundle = await build({
  entryPoints: [path.join(ROOT, "sdk-edge", "dist", "sdk-edge", "src", "index.js")],
  bundle: true,
  minify: true,
  format: "esm",
  platform: "neutral",
  write: false,
});
const jsBytes = bundle.outputFiles[0].contents.length;
const wasm = readFileSync(path.join(ROOT, "sdk-edge", "dist", "waitstate.wasm"));
const wasmBytes = wasm.length;
const gzipped = gzipSync(bundle.outputFiles[0].contents, { level: 9 }).length + gzipSync(wasm, { level: 9 }).length;
const clientOnly = await build({
  stdin: {
    contents: 'export { WaitState, init } from "./index.js";',
    resolveDir: path.join(ROOT, "sdk-edge", "dist", "sdk-edge", "src"),
  },
  bundle: true,
  minify: true,
  format: "esm",
  platform: "neutral",
  write: false,
});
const clientBytes = clientOnly.outputFiles[0].contents.length;

const med = Object.fromEntries(SUBJECTS.map((s) => [s.name, median(samples.get(s.name))]));
const gateNs = med["@waitstate/edge WaitState.gate() (full client)"];
const tsClock = med["TypeScript gate (LocalGate), Date.now() per call"];
const tsFixed = med["TypeScript gate (LocalGate), fixed now"];
const syncNs = med["@waitstate/edge WaitState.sync(), nothing due"];
const kb = (b) => `${(b / 1024).toFixed(1)} KB`;
const fmt = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

const lines = [];
lines.push(
  `Node ${process.version}, ${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}, ${ROUNDS} interleaved rounds, median ns per call:`,
);
lines.push("");
lines.push("| subject | ns/call (median) |");
lines.push("|---|---:|");
for (const s of SUBJECTS) lines.push(`| ${s.name} | ${fmt(med[s.name])} |`);
lines.push("");
lines.push(
  `Targets: gate() through the edge client ≤ 1.5× the TypeScript gate: ${(gateNs / tsClock).toFixed(2)}× (both reading the clock per call; ${(gateNs / tsFixed).toFixed(2)}× against the fixed-now gate).`,
);
lines.push(`sync() with nothing due ≤ 1 µs: ${fmt(syncNs)} ns.`);
lines.push(
  `wasm + JS minified ≤ 40 KB: ${kb(wasmBytes + jsBytes)} (wasm ${kb(wasmBytes)}, the whole default entry ${kb(jsBytes)}; WaitState and init alone ${kb(clientBytes)} of JS); gzipped, as served: ${kb(gzipped)}.`,
);
process.stdout.write(`${lines.join("\n")}\n`);
if (sink === 42) process.stdout.write("");
