// Pulses per second through the real control plane under `wrangler dev`: one
// site, 20 tags with latency histograms, 10 reflex rules, HMAC-signed; beside a
// trivial route (GET /healthz) measured in the same run, in interleaved rounds.
// Each pulse is verified (HMAC), validated (zod), and merged and evaluated by
// the site's Durable Object, which answers with the policy.
// Issue 4's target: pulses ≥ 60 % of the trivial route's throughput.
import { createHmac } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { LatencyHistogram } from "@waitstate/protocol/histogram";
import { ROOT, log } from "../scripts/lib.mjs";
import { startLocalControlPlane } from "../scripts/local-control-plane.mjs";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 3000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const PORT = process.env.BENCH_PORT ? Number(process.env.BENCH_PORT) : undefined;

log("pulse bench: a fresh wrangler dev with its own local state");
const cp = await startLocalControlPlane({ port: PORT });
process.on("exit", () => {
  if (cp.child) process.kill(-cp.child.pid, "SIGTERM");
});
const BASE = cp.url;
const { managementToken, publishKey, secretKey } = await cp.tenant("Bench Co");

// Ten rules over site-wide and per-tag metrics (inserted through the management API when it exists).
const TAGS = Array.from({ length: 20 }, (_, i) => `tag${i}`);
const METRICS = ["latency", "p95_latency", "p99_latency", "errors", "error_rate"];
for (let i = 0; i < 10; i++) {
  const rule = {
    tagName: TAGS[i],
    metric: METRICS[i % METRICS.length],
    metricTag: i % 2 ? TAGS[i] : null,
    operator: "gt",
    threshold: 1e9,
    action: "block",
    priority: i + 1,
  };
  const res = await fetch(`${BASE}/v1/reflex-rules`, {
    method: "POST",
    headers: { authorization: `Bearer ${managementToken}`, "content-type": "application/json" },
    body: JSON.stringify(rule),
  });
  if (res.status === 404 && i === 0) {
    log("no /v1/reflex-rules route yet: benchmarking without rules");
    break;
  }
  if (!res.ok) throw new Error(`rule: ${res.status} ${await res.text()}`);
}

const histogram = LatencyHistogram.fromValues(Array.from({ length: 200 }, (_, i) => 5 + (i % 40) * 9)).encode();
const T0 = Date.now();
let seq = 0;
/** A signed pulse from instance `slot`: a fresh ts each time, so every one is counted. */
function signedPulse(slot) {
  const ts = T0 + seq++; // strictly increasing per instance: never an idempotent replay
  const body = JSON.stringify({
    instanceId: `bench-${slot}`,
    siteId: "bench",
    usageDelta: 2000,
    bouncedUnits: 10,
    metrics: { latency: 40, errors: 3, latencyHistogram: histogram },
    tagMetrics: TAGS.map((tag) => ({ tag, latency: 40, count: 100, bounced: 0, errors: 0, latencyHistogram: histogram })),
    ts,
  });
  const timestamp = String(Date.now());
  const signature = createHmac("sha256", secretKey).update(`${body}.${timestamp}`).digest("hex");
  return {
    body,
    headers: {
      "content-type": "application/json",
      "x-waitstate-id": publishKey,
      "x-waitstate-timestamp": timestamp,
      "x-waitstate-signature": signature,
    },
  };
}

/** Pulses are signed before a round starts, so the client's HMAC work is not timed against the server. */
function presign(count) {
  return Array.from({ length: CONCURRENCY }, (_, slot) => Array.from({ length: count }, () => signedPulse(slot)));
}

async function closedLoop(kind, durationMs) {
  const ready = kind === "pulse" ? presign(Math.ceil((durationMs / 1000) * 600)) : null;
  const latencies = [];
  const deadline = performance.now() + durationMs;
  let failures = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, slot) => {
      while (performance.now() < deadline) {
        const request = ready ? (ready[slot].shift() ?? signedPulse(slot)) : null;
        const t0 = performance.now();
        const res = request ? await fetch(`${BASE}/v1/pulse`, { method: "POST", ...request }) : await fetch(`${BASE}/healthz`);
        await res.arrayBuffer();
        latencies.push(performance.now() - t0);
        if (!res.ok) failures++;
      }
    }),
  );
  const elapsed = performance.now() - started;
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  return { rps: (latencies.length / elapsed) * 1000, p50: q(0.5), p99: q(0.99), failures };
}

// Warm-up: the Durable Object, the key cache and the JIT.
await closedLoop("pulse", 1000);
await closedLoop("trivial", 500);
const results = { pulse: [], trivial: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const kind of round % 2 ? ["pulse", "trivial"] : ["trivial", "pulse"]) {
    const r = await closedLoop(kind, ROUND_MS);
    if (r.failures) throw new Error(`${kind}: ${r.failures} failed requests`);
    results[kind].push(r);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const summary = Object.fromEntries(
  Object.entries(results).map(([kind, rs]) => [
    kind,
    { rps: median(rs.map((r) => r.rps)), p50: median(rs.map((r) => r.p50)), p99: median(rs.map((r) => r.p99)) },
  ]),
);
const ratio = summary.pulse.rps / summary.trivial.rps;
const f = (n, d = 0) => n.toFixed(d);
const table = [
  `Control plane under \`wrangler dev\` on this machine, ${CONCURRENCY} concurrent clients, ${ROUNDS} interleaved rounds of ${ROUND_MS / 1000} s, medians:`,
  "",
  "| route | requests/s | p50 ms | p99 ms |",
  "|---|---:|---:|---:|",
  `| GET /healthz (trivial) | ${f(summary.trivial.rps)} | ${f(summary.trivial.p50, 2)} | ${f(summary.trivial.p99, 2)} |`,
  `| POST /v1/pulse (20 tags, histograms, HMAC, DO merge + 10 rules) | ${f(summary.pulse.rps)} | ${f(summary.pulse.p50, 2)} | ${f(summary.pulse.p99, 2)} |`,
  "",
  `Pulses run at **${f(ratio * 100)} %** of the trivial route's throughput (target ≥ 60 %).`,
].join("\n");
console.log(`\n${table}\n`);

const readme = path.join(ROOT, "README.md");
const text = readFileSync(readme, "utf8");
const start = "<!-- bench-pulse:start -->";
const end = "<!-- bench-pulse:end -->";
if (text.includes(start) && text.includes(end)) {
  writeFileSync(readme, `${text.slice(0, text.indexOf(start) + start.length)}\n${table}\n${text.slice(text.indexOf(end))}`);
  log("README.md updated (bench-pulse section)");
}
await cp.dispose();
process.exit(0);
