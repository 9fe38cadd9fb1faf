// `node bench/scale.bench.mjs` (after `node scripts/setup.mjs`): how many
// instances the control plane under `wrangler dev` carries on this machine.
//
// Simulated instances send real HMAC-signed pulses shaped like the SDK's (3
// tags with counts, errors and latency histograms, plus the site-wide
// histogram) at the pulse interval the policy answers with (enterprise
// default 1000 ms), jittered ±10 %, open-loop: a pulse is due on schedule
// whatever the earlier ones do; at most one per instance is in flight, a due
// pulse meeting one in flight is skipped and counted. Keep-alive connections
// (node:http Agent). Scenarios: 10, 100 and 1000 instances on one site, then
// 100 sites × 10 instances; each site gets one pulse first, then a short
// warm-up, then BENCH_SCALE_SECONDS (default 15) measured. Last, 100 new sites
// × 10 instances cold: no first pulse, measured from the start, which shows
// what a fleet of new sites does to the control plane. The org has two
// never-firing org-wide reflex rules.
//
// CPU: utime + stime of every process in the control plane's process group
// (wrangler's node processes and workerd, from /proc/<pid>/stat) over the
// measured seconds, divided by accepted pulses — Worker + Durable Object +
// local KV/D1 under wrangler dev, not Cloudflare's production CPU accounting —
// and the load generator's own CPU (process.cpuUsage), to show whether the
// client side was the bottleneck.
//
// Env: BENCH_SCALE_SECONDS (15), BENCH_SCALE_WARMUP_SECONDS (3),
// BENCH_SCALE_SCENARIOS (e.g. "10,100,1000,100x10"), BENCH_WRITE_README=0.
// Never asserted in tests: this machine is shared and noisy.
import http from "node:http";
import os from "node:os";
import { log } from "../scripts/lib.mjs";
import { startLocalControlPlane } from "../scripts/local-control-plane.mjs";
import {
  cpuBetween,
  groupCpu,
  guardControlPlane,
  jitter,
  median,
  pulseTelemetryVariants,
  quantileSorted,
  signPulse,
  sleep,
  writeReadmeSection,
} from "./support.mjs";

const SECONDS = Number(process.env.BENCH_SCALE_SECONDS ?? 15);
const WARMUP_SECONDS = Number(process.env.BENCH_SCALE_WARMUP_SECONDS ?? 3);
const TRACE = process.env.BENCH_SCALE_TRACE === "1"; // per-second completions and slowest pulse
const REQUEST_TIMEOUT_MS = 10_000; // the SDK's default
const DEFAULT_INTERVAL_MS = 1000; // enterprise; each instance follows the policy it gets back
// "NxM": N sites × M instances; a "cold" suffix: the sites are new and the load starts at once, measured from
// the first pulse (otherwise each site gets one pulse first, then the warm-up, then the measurement).
const SCENARIOS = (process.env.BENCH_SCALE_SCENARIOS ?? "10,100,1000,100x10,100x10cold").split(",").map((spec) => {
  const cold = spec.endsWith("cold");
  const [a, b] = spec.replace("cold", "").split("x").map(Number);
  const label = b === undefined ? `${a} instances, 1 site` : `${a} sites × ${b} instances`;
  return {
    key: spec,
    label: cold ? `${label}, cold start (new sites, measured from the first pulse)` : label,
    sites: b === undefined ? 1 : a,
    perSite: b === undefined ? a : b,
    cold,
  };
});

const started = Date.now();
const loadBefore = os.loadavg()[0];
log("scale bench: a fresh wrangler dev with its own local state");
const cp = await startLocalControlPlane({ quiet: true });
const stopControlPlane = guardControlPlane(cp);
const pgid = cp.child.pid;
/** What wrangler printed (warnings, reloads) during the current scenario. */
let wranglerSaid = "";
for (const stream of [cp.child.stdout, cp.child.stderr]) stream.on("data", (d) => (wranglerSaid = (wranglerSaid + d).slice(-20_000)));
const { managementToken, publishKey, secretKey } = await cp.tenant("Scale Co", "enterprise");
for (const rule of [
  { tagName: "free", metric: "p95_latency", operator: "gt", threshold: 1e6, action: "block", priority: 1 },
  { tagName: null, metric: "error_rate", operator: "gt", threshold: 0.99, action: "throttle", actionValue: 0.5, priority: 2 },
]) {
  await cp.api("POST", "/v1/reflex-rules", managementToken, rule);
}
const { hostname, port } = new URL(cp.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 4096 });
const telemetry = pulseTelemetryVariants(16);
log(
  `pulse bodies: ~${signPulse({ instanceId: "scale-0000-0000", siteId: "scale-1000", ts: Date.now(), telemetry: telemetry[0], publishKey, secretKey }).body.length} bytes`,
);

// Idle CPU of the control plane, for reference.
const idleBefore = groupCpu(pgid);
await sleep(2000);
const idleCpuPerSecond = cpuBetween(idleBefore, groupCpu(pgid)).total / 2;

/** One scenario: instances pulse open-loop; returns what the measured seconds saw. */
async function scenario({ key, label, sites, perSite, cold }) {
  const stats = { offered: 0, sent: 0, skipped: 0, ok: 0, byStatus: {}, sampleBodies: {}, latencies: [], trace: {} };
  wranglerSaid = "";
  let running = true;
  let span = { from: Infinity, to: Infinity };
  const instances = [];
  for (let s = 0; s < sites; s++) {
    const siteId = sites === 1 ? `scale-${key}` : `scale-${key}-${String(s).padStart(3, "0")}`;
    for (let i = 0; i < perSite; i++) {
      instances.push({
        siteId,
        instanceId: `inst-${String(i).padStart(4, "0")}`,
        inFlight: false,
        lastTs: 0,
        intervalMs: DEFAULT_INTERVAL_MS,
        nextAt: 0,
        n: s * perSite + i,
      });
    }
  }

  /** Sends one pulse now; resolves with its status once answered. */
  const send = (inst) =>
    new Promise((resolveSent) => {
      const ts = Math.max(Date.now(), inst.lastTs + 1);
      inst.lastTs = ts;
      const { body, headers } = signPulse({
        instanceId: inst.instanceId,
        siteId: inst.siteId,
        ts,
        telemetry: telemetry[(inst.n + ts) % telemetry.length],
        publishKey,
        secretKey,
      });
      inst.inFlight = true;
      const t0 = performance.now();
      let settled = false;
      const done = (status, text) => {
        if (settled) return;
        settled = true;
        inst.inFlight = false;
        resolveSent(status);
        const t1 = performance.now();
        if (status === 200 && text) {
          try {
            const interval = JSON.parse(text).pulseInterval;
            if (Number.isInteger(interval) && interval >= 100) inst.intervalMs = interval;
          } catch {
            // not a policy: counted by status below
          }
        }
        if (t1 < span.from || t1 > span.to) return;
        const ok = typeof status === "number" && status >= 200 && status < 300;
        if (ok) {
          stats.ok++;
          stats.latencies.push(t1 - t0);
        } else {
          stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
          if (!(status in stats.sampleBodies)) stats.sampleBodies[status] = String(text ?? "").slice(0, 300);
        }
        if (TRACE) {
          const second = Math.floor(Date.now() / 1000);
          const row = (stats.trace[second] ??= { n: 0, ok: 0, max: 0 });
          row.n++;
          if (ok) row.ok++;
          row.max = Math.max(row.max, t1 - t0);
        }
      };
      const req = http.request({ agent, hostname, port, method: "POST", path: "/v1/pulse", headers }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => done(res.statusCode, Buffer.concat(chunks).toString("utf8")));
        res.on("error", (e) => done(e.code ?? "response_error"));
      });
      req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(Object.assign(new Error("timeout"), { code: "timeout" })));
      req.on("error", (e) => done(e.code ?? "request_error"));
      req.end(body);
    });

  const due = (inst) => {
    if (!running) return;
    const now = performance.now();
    if (now >= span.from && now <= span.to) stats.offered++;
    if (inst.inFlight) {
      if (now >= span.from && now <= span.to) stats.skipped++;
    } else {
      if (now >= span.from && now <= span.to) stats.sent++;
      send(inst);
    }
    inst.nextAt += jitter(inst.intervalMs);
    setTimeout(() => due(inst), Math.max(0, inst.nextAt - performance.now()));
  };

  if (!cold) {
    // One pulse per site first: each site's aggregator exists and has loaded its configuration.
    const firstOfSite = instances.filter((_inst, i) => i % perSite === 0);
    const primed = await Promise.all(firstOfSite.map((inst) => send(inst)));
    const failed = primed.filter((status) => status !== 200);
    if (failed.length) log(`${label}: ${failed.length} of ${primed.length} priming pulses failed (${failed.join(", ")})`);
  }
  const cpuBeforeCold = cold ? groupCpu(pgid) : null;
  const selfBeforeCold = cold ? process.cpuUsage() : null;
  const begin = performance.now();
  if (cold) span = { from: begin, to: Infinity };
  for (const inst of instances) {
    inst.nextAt = begin + Math.random() * inst.intervalMs; // random phase: instances do not pulse in step
    setTimeout(() => due(inst), inst.nextAt - begin);
  }
  if (!cold) await sleep(WARMUP_SECONDS * 1000);

  const cpuBefore = cpuBeforeCold ?? groupCpu(pgid);
  const selfBefore = selfBeforeCold ?? process.cpuUsage();
  if (!cold) span = { from: performance.now(), to: Infinity };
  await sleep(SECONDS * 1000);
  const end = performance.now();
  span = { from: span.from, to: end };
  const cpuAfter = groupCpu(pgid);
  const self = process.cpuUsage(selfBefore);
  const wall = (end - span.from) / 1000;
  running = false;

  // Drain what is still in flight before the next scenario.
  const drainUntil = performance.now() + REQUEST_TIMEOUT_MS + 1000;
  while (instances.some((i) => i.inFlight) && performance.now() < drainUntil) await sleep(50);
  const cpu = cpuBetween(cpuBefore, cpuAfter);
  for (const [status, body] of Object.entries(stats.sampleBodies)) log(`${label}: a ${status} answer: ${body}`);
  const gone = [...cpuBefore.keys()].filter((pid) => !cpuAfter.has(pid)).map((pid) => `${pid} ${cpuBefore.get(pid).comm}`);
  const fresh = [...cpuAfter.keys()].filter((pid) => !cpuBefore.has(pid)).map((pid) => `${pid} ${cpuAfter.get(pid).comm}`);
  if (gone.length || fresh.length) {
    log(
      `${label}: the control plane's processes changed during the measurement (gone: ${gone.join(", ") || "none"}; new: ${fresh.join(", ") || "none"}): CPU of exited ones is missing`,
    );
  }
  if (wranglerSaid.trim()) log(`${label}: wrangler said meanwhile:\n${wranglerSaid.trim().slice(-2000)}`);
  if (TRACE) {
    for (const [second, row] of Object.entries(stats.trace)) {
      log(
        `  ${new Date(Number(second) * 1000).toISOString().slice(11, 19)} completed ${row.n} (2xx ${row.ok}), slowest ${row.max.toFixed(0)} ms`,
      );
    }
  }
  stats.latencies.sort((a, b) => a - b);
  const result = {
    label,
    instances: instances.length,
    wall,
    offered: stats.offered / wall,
    accepted: stats.ok / wall,
    sent: stats.sent,
    skipped: stats.skipped,
    byStatus: stats.byStatus,
    p50: quantileSorted(stats.latencies, 0.5),
    p99: quantileSorted(stats.latencies, 0.99),
    cpuPerPulseMs: stats.ok > 0 ? (cpu.total * 1000) / stats.ok : NaN,
    netCpuPerPulseMs: stats.ok > 0 ? (Math.max(0, cpu.total - idleCpuPerSecond * wall) * 1000) / stats.ok : NaN,
    cpuCores: cpu.total / wall,
    cpuByComm: cpu.byComm,
    selfCores: (self.user + self.system) / 1e6 / wall,
    intervals: [...new Set(instances.map((i) => i.intervalMs))],
    restartedMidRequest: Object.values(stats.sampleBodies).some((b) => b.includes("restarted mid-request")),
  };
  log(
    `${label}: offered ${result.offered.toFixed(0)}/s, accepted ${result.accepted.toFixed(0)}/s, skipped ${result.skipped}, errors ${JSON.stringify(result.byStatus)}, p50 ${result.p50?.toFixed(1)} ms, p99 ${result.p99?.toFixed(1)} ms; control plane ${result.cpuCores.toFixed(2)} cores (${Object.entries(
      cpu.byComm,
    )
      .map(([c, s]) => `${c} ${(s / wall).toFixed(2)}`)
      .join(", ")}), load generator ${result.selfCores.toFixed(2)} cores; intervals ${result.intervals.join(",")} ms`,
  );
  await sleep(1000);
  return result;
}

const results = [];
try {
  for (const s of SCENARIOS) results.push(await scenario(s));
} finally {
  agent.destroy();
  await stopControlPlane();
}
const elapsed = (Date.now() - started) / 1000;

const f = (n, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : "—");
const errors = (byStatus) => {
  const entries = Object.entries(byStatus);
  return entries.length === 0 ? "0" : entries.map(([status, n]) => `${n} × ${status}`).join(", ");
};
const lines = [
  `Control plane under \`wrangler dev\` on this machine (${os.cpus()[0]?.model.trim() ?? "cpu"} × ${os.cpus().length}, shared with other work; load average ${loadBefore.toFixed(2)} before the run), Node ${process.version}.`,
  `Simulated instances send signed pulses (3 tags with counts, errors and latency histograms, ~${(signPulse({ instanceId: "inst-0000", siteId: "scale-1000", ts: Date.now(), telemetry: telemetry[0], publishKey, secretKey }).body.length / 1024).toFixed(1)} KiB) at the policy's pulse interval (${results[0]?.intervals.join("/") ?? DEFAULT_INTERVAL_MS} ms, ±10 % jitter), open-loop with at most one pulse in flight per instance (a due pulse meeting one in flight is skipped), over keep-alive connections; two never-firing org-wide rules. Each site gets one pulse first, then ${WARMUP_SECONDS} s warm-up, then ${SECONDS} s measured; the cold row has new sites, no first pulse and no warm-up.`,
  `**Control-plane CPU** is utime + stime of every process in wrangler's process group (wrangler's node processes and workerd: Worker + Durable Objects + local KV/D1 under \`wrangler dev\`, not Cloudflare's production CPU accounting), per accepted pulse; idle it spends ${f(idleCpuPerSecond * 1000)} ms/s. The load generator's own CPU is in the last column (1 core = saturated).`,
  "",
  "| scenario | instances | offered pulses/s | accepted pulses/s (2xx) | skipped (in flight) | errors | p50 ms | p99 ms | control-plane CPU per pulse ms (net of idle) | control-plane CPU cores | load generator CPU cores |",
  "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
  ...results.map(
    (r) =>
      `| ${r.label} | ${r.instances} | ${f(r.offered)} | ${f(r.accepted)} | ${r.skipped} | ${errors(r.byStatus)} | ${f(r.p50, 1)} | ${f(r.p99, 1)} | ${f(r.cpuPerPulseMs, 2)} (${f(r.netCpuPerPulseMs, 2)}) | ${f(r.cpuCores, 2)} | ${f(r.selfCores, 2)} |`,
  ),
  "",
  ...(results.some((r) => r.restartedMidRequest)
    ? [
        '503 = wrangler dev\'s proxy could not reach the worker (its text says "Your worker restarted mid-request", but wrangler words every failed proxied POST to a path other than `/` so; the worker did not reload).',
        "",
      ]
    : []),
  `Run: ${elapsed.toFixed(0)} s. Median control-plane CPU per pulse over the scenarios: ${f(median(results.map((r) => r.cpuPerPulseMs)), 2)} ms.`,
];
const table = lines.join("\n");
process.stdout.write(`\n${table}\n\n`);
writeReadmeSection("scale", table);
process.exit(0);
