// `npm run bench`: ns per gate() call, medians over interleaved rounds, with
// ratios against baselines measured in the same run; garbage collections
// during 10 million calls. Writes the table into README.md between the
// bench markers. Never asserted in tests: this machine is shared and noisy.
import { PerformanceObserver } from "node:perf_hooks";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { LocalGate } from "@waitstate/protocol/gate";
import { EdgeGate } from "@waitstate/edge";
import { RateLimiterMemory } from "rate-limiter-flexible";
import { RateLimiter } from "limiter";
import { startPolicyStub, stubUrl } from "./support.mjs";
import { WaitState } from "../sdk-node/dist/sdk-node/src/index.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const CALLS = Number(process.env.BENCH_CALLS ?? 2_000_000);
const GC_CALLS = 10_000_000;
const TAGS = ["free", "pro", "enterprise", "internal"];
const WEIGHTS = [1, 3, 7, 12];
const NOW = Date.now();
const POLICY = {
  version: 1,
  globalMaxWeight: 10,
  tagMaxWeights: { free: 0, pro: 5, internal: null },
  killSignal: false,
  status: "ok",
  pulseInterval: 2000,
  leaseDurationSeconds: 60,
  issuedAt: NOW,
};

let sink = 0;

// --- subjects: each runs `n` checks over a rotating tag/weight mix
const floorMap = new Map(TAGS.map((t, i) => [t, i]));
function mapGetFloor(n) {
  let s = 0;
  for (let i = 0; i < n; i++) s += floorMap.get(TAGS[i & 3]);
  sink += s;
}

const tsGate = new LocalGate();
tsGate.update(POLICY, NOW);
function tsGateCounting(n) {
  let allowed = 0;
  for (let i = 0; i < n; i++) if (tsGate.gate(TAGS[i & 3], WEIGHTS[i & 3], NOW).allowed) allowed++;
  sink += allowed;
}

const edgeGate = new EdgeGate();
edgeGate.update(POLICY, NOW);
function edgeGateWasm(n) {
  let allowed = 0;
  for (let i = 0; i < n; i++) if (edgeGate.gate(TAGS[i & 3], WEIGHTS[i & 3], NOW).allowed) allowed++;
  sink += allowed;
}

// The full Node client: coarse clock, lease check, per-tag counting. Its control
// plane is a stub in this process that answers every pulse with POLICY, so the
// client is synced (and pulsing between rounds) as in production.
const stub = await startPolicyStub(POLICY);
const client = new WaitState({
  publishKey: "pk_bench",
  secretKey: "sk_bench",
  baseUrl: stubUrl(stub),
  onError: () => {},
});
if (!(await client.ready(5000))) throw new Error("the client did not sync with the stub control plane");
function sdkClientGate(n) {
  let allowed = 0;
  for (let i = 0; i < n; i++) if (client.gate(TAGS[i & 3], WEIGHTS[i & 3]).allowed) allowed++;
  sink += allowed;
}

// Peers. limiter's check is synchronous; rate-limiter-flexible's is a Promise.
const tokenBucket = new RateLimiter({ tokensPerInterval: 1e12, interval: "second" });
function limiterTokenBucket(n) {
  let allowed = 0;
  for (let i = 0; i < n; i++) if (tokenBucket.tryRemoveTokens(WEIGHTS[i & 3])) allowed++;
  sink += allowed;
}

const flexible = new RateLimiterMemory({ points: 1e12, duration: 1 });
async function rateLimiterFlexible(n) {
  let allowed = 0;
  for (let i = 0; i < n; i++) {
    try {
      await flexible.consume(TAGS[i & 3], WEIGHTS[i & 3]);
      allowed++;
    } catch {
      // rejected: over the limit
    }
  }
  sink += allowed;
}

const SUBJECTS = [
  { name: "Map.get (floor)", fn: mapGetFloor, calls: CALLS },
  { name: "TypeScript gate + per-tag counting (LocalGate)", fn: tsGateCounting, calls: CALLS },
  { name: "EdgeGate (wasm, tag ids cached)", fn: edgeGateWasm, calls: CALLS },
  { name: "@waitstate/sdk client.gate() (full client, counting)", fn: sdkClientGate, calls: CALLS },
  { name: "limiter 4.1 tryRemoveTokens (sync)", fn: limiterTokenBucket, calls: CALLS / 4 },
  { name: "rate-limiter-flexible 11.4 memory consume", fn: rateLimiterFlexible, calls: CALLS / 40 },
];

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function timeRound(subject) {
  const start = process.hrtime.bigint();
  await subject.fn(subject.calls);
  return Number(process.hrtime.bigint() - start) / subject.calls;
}

async function countGcs(fn, calls) {
  let gcs = 0;
  const observer = new PerformanceObserver((list) => {
    gcs += list.getEntries().length;
  });
  global.gc?.();
  await new Promise((r) => setTimeout(r, 50));
  observer.observe({ entryTypes: ["gc"] });
  await fn(calls);
  await new Promise((r) => setTimeout(r, 100)); // let gc entries arrive
  observer.disconnect();
  return gcs;
}

// Warm up (JIT tiers) before measuring.
for (const s of SUBJECTS) for (let k = 0; k < 3; k++) await s.fn(Math.min(s.calls, 200_000));

const samples = new Map(SUBJECTS.map((s) => [s.name, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const s of SUBJECTS) samples.get(s.name).push(await timeRound(s));
}

const gcRows = [
  ["TypeScript gate + per-tag counting (LocalGate)", await countGcs(tsGateCounting, GC_CALLS)],
  ["EdgeGate (wasm, tag ids cached)", await countGcs(edgeGateWasm, GC_CALLS)],
  ["@waitstate/sdk client.gate()", await countGcs(sdkClientGate, GC_CALLS)],
];
await client.shutdown();
stub.close();

const med = Object.fromEntries(SUBJECTS.map((s) => [s.name, median(samples.get(s.name))]));
const floor = med["Map.get (floor)"];
const ts = med["TypeScript gate + per-tag counting (LocalGate)"];
const fmt = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

const lines = [];
lines.push(
  `Node ${process.version}, ${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}, ${ROUNDS} interleaved rounds, median ns per call:`,
);
lines.push("");
lines.push("| subject | ns/call (median) | × Map.get floor | × TypeScript gate |");
lines.push("|---|---:|---:|---:|");
for (const s of SUBJECTS) {
  const ns = med[s.name];
  lines.push(`| ${s.name} | ${fmt(ns)} | ${(ns / floor).toFixed(2)} | ${(ns / ts).toFixed(2)} |`);
}
lines.push("");
lines.push(`Garbage collections during ${GC_CALLS.toLocaleString("en-US")} calls: ${gcRows.map(([n, g]) => `${n}: **${g}**`).join("; ")}.`);
const wasmBytes = readFileSync(path.join(ROOT, "sdk-edge", "dist", "waitstate.wasm")).length;
lines.push(`wasm module: ${wasmBytes.toLocaleString("en-US")} bytes (limit 16,384).`);
lines.push("");
lines.push(
  `Targets: TypeScript gate ≤ 2× floor (${(ts / floor).toFixed(2)}×; the full client ${(med["@waitstate/sdk client.gate() (full client, counting)"] / floor).toFixed(2)}×), EdgeGate ≤ 1.5× TypeScript gate (${(med["EdgeGate (wasm, tag ids cached)"] / ts).toFixed(2)}×), ≥ 20× faster than rate-limiter-flexible (${(med["rate-limiter-flexible 11.4 memory consume"] / ts).toFixed(0)}×).`,
);
const table = lines.join("\n");
process.stdout.write(`${table}\n`);
if (sink === 42) process.stdout.write(""); // keep `sink` observable

const readmePath = path.join(ROOT, "README.md");
const readme = readFileSync(readmePath, "utf8");
const marked = /<!-- bench:start -->[\s\S]*<!-- bench:end -->/;
if (process.env.BENCH_WRITE_README !== "0" && marked.test(readme)) {
  writeFileSync(readmePath, readme.replace(marked, `<!-- bench:start -->\n${table}\n<!-- bench:end -->`));
  process.stdout.write("\nREADME.md updated.\n");
}
