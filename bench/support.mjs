// Helpers shared by bench/reaction.bench.mjs and bench/scale.bench.mjs:
// statistics, README sections, the control plane's process-group CPU time,
// and signed pulses shaped like the SDK's. Node builtins and workspace
// packages only.
import { execFileSync } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { LatencyHistogram } from "@waitstate/protocol/histogram";
import { ROOT, log } from "../scripts/lib.mjs";

// ---------------------------------------------------------------- statistics

export function median(values) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The q-quantile (nearest rank) of an already sorted array. */
export function quantileSorted(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** A value ±spread (default ±10 %), as the SDK jitters its pulse interval. */
export function jitter(ms, spread = 0.1) {
  return ms * (1 - spread + 2 * spread * Math.random());
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Epoch ms with sub-millisecond precision (comparable with the control plane's Date.now(): same machine). */
export const nowMs = () => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------- README

/**
 * Replaces what lies between `<!-- bench-NAME:start -->` and `<!-- bench-NAME:end -->`
 * in README.md with `table`; does nothing when the markers are absent or
 * BENCH_WRITE_README=0.
 */
export function writeReadmeSection(name, table) {
  if (process.env.BENCH_WRITE_README === "0") return;
  const readmePath = path.join(ROOT, "README.md");
  const readme = readFileSync(readmePath, "utf8");
  const start = `<!-- bench-${name}:start -->`;
  const end = `<!-- bench-${name}:end -->`;
  const i = readme.indexOf(start);
  const j = readme.indexOf(end);
  if (i < 0 || j < i) {
    log(`README.md has no bench-${name} markers: not written`);
    return;
  }
  writeFileSync(readmePath, `${readme.slice(0, i + start.length)}\n${table}\n${readme.slice(j)}`);
  log(`README.md updated (bench-${name} section)`);
}

// ---------------------------------------------------------------- control plane lifecycle

/**
 * Makes sure the control plane's process group (wrangler + workerd) never
 * outlives this process, whatever ends it. Returns a function that stops the
 * control plane cleanly.
 */
export function guardControlPlane(cp) {
  const pgid = cp.child?.pid;
  const kill = () => {
    if (pgid === undefined) return;
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // already gone
    }
  };
  process.on("exit", kill);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(signal, () => {
      kill();
      process.exit(130);
    });
  }
  return async () => {
    await cp.dispose();
    process.off("exit", kill);
  };
}

// ---------------------------------------------------------------- process-group CPU

let clockTicks = null;
/** Clock ticks per second (`getconf CLK_TCK`), the unit of utime/stime in /proc/<pid>/stat. */
export function clkTck() {
  if (clockTicks === null) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/**
 * CPU time of every live process whose process group is `pgid` (from
 * /proc/<pid>/stat: utime + stime, every thread included), as
 * Map<pid, { comm, seconds }>. Processes that exited are gone from the map;
 * compare snapshots per pid.
 */
export function groupCpu(pgid) {
  const tck = clkTck();
  const out = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid pgrp ..." — comm may hold spaces and parentheses: split after the last ")".
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const fields = stat.slice(close + 2).split(" ");
    // fields[0] is field 3 (state): pgrp is field 5, utime 14, stime 15.
    if (Number(fields[2]) !== pgid) continue;
    out.set(Number(entry), { comm, seconds: (Number(fields[11]) + Number(fields[12])) / tck });
  }
  return out;
}

/** CPU seconds each process of the group spent between two snapshots (new processes count from 0), by command name. */
export function cpuBetween(before, after) {
  let total = 0;
  const byComm = {};
  for (const [pid, now] of after) {
    const spent = now.seconds - (before.get(pid)?.seconds ?? 0);
    total += spent;
    byComm[now.comm] = (byComm[now.comm] ?? 0) + spent;
  }
  return { total, byComm };
}

// ---------------------------------------------------------------- pulses

/**
 * Pulse telemetry shaped like the SDK's for one interval (docs/protocol.md#the-pulse: per-tag
 * counts, errors and latency histograms, and a site-wide histogram merged
 * from the tags'), as a JSON fragment to splice into a body. `variants`
 * different ones, so the aggregator does not merge the very same numbers.
 */
export function pulseTelemetryVariants(
  variants = 16,
  tags = [
    { tag: "free", calls: 400, baseMs: 60, errorEvery: 200 },
    { tag: "pro", calls: 120, baseMs: 45, errorEvery: 400 },
    { tag: "enterprise", calls: 30, baseMs: 35, errorEvery: 0 },
  ],
) {
  const out = [];
  for (let v = 0; v < variants; v++) {
    const site = new LatencyHistogram();
    let siteErrors = 0;
    let usage = 0;
    let bounced = 0;
    const tagMetrics = tags.map(({ tag, calls, baseMs, errorEvery }) => {
      const count = Math.round(calls * (0.8 + (0.4 * ((v * 7 + tag.length) % 10)) / 10));
      const h = new LatencyHistogram();
      for (let i = 0; i < count; i++) h.record(baseMs * (0.5 + ((i * 37 + v * 11) % 100) / 50) + (i % 50 === 0 ? 400 : 0));
      site.merge(h);
      const errors = errorEvery ? Math.floor(count / errorEvery) + (v % 2) : 0;
      const b = tag === "free" ? v % 3 : 0;
      siteErrors += errors;
      usage += count;
      bounced += b;
      return { tag, latency: h.mean ?? 0, count, bounced: b, errors, latencyHistogram: h.encode() };
    });
    const metrics = { latency: site.mean ?? 0, errors: siteErrors, latencyHistogram: site.encode() };
    out.push({
      usageDelta: usage,
      json: `"usageDelta":${usage},"bouncedUnits":${bounced},"metrics":${JSON.stringify(metrics)},"tagMetrics":${JSON.stringify(tagMetrics)}`,
    });
  }
  return out;
}

/** A signed pulse request: the body and the headers of docs/protocol.md#signing-a-pulse. */
export function signPulse({ instanceId, siteId, ts, telemetry, publishKey, secretKey }) {
  const body = `{"instanceId":${JSON.stringify(instanceId)},"siteId":${JSON.stringify(siteId)},${telemetry.json},"ts":${ts}}`;
  const timestamp = String(Date.now());
  const signature = createHmac("sha256", secretKey).update(`${body}.${timestamp}`).digest("hex");
  return {
    body,
    headers: {
      "content-type": "application/json",
      "content-length": String(Buffer.byteLength(body)),
      "x-waitstate-id": publishKey,
      "x-waitstate-timestamp": timestamp,
      "x-waitstate-signature": signature,
    },
  };
}

// ---------------------------------------------------------------- a stand-in control plane

/**
 * A stand-in control plane: token exchange, pulses answered with an
 * all-allowing policy, and policy reads. It checks nothing (the real one is
 * benchmarked in bench/pulse.bench.mjs); it exists so the SDK pulses and
 * holds a live lease while the servers are under load. Its policy asks for a
 * pulse every `pulseIntervalMs`.
 */
export async function startControlPlane(pulseIntervalMs = 1000) {
  const publishKey = `pk_bench_${randomUUID().slice(0, 8)}`;
  const secretKey = `sk_bench_${randomUUID()}`;
  let pulses = 0;
  const policy = () =>
    JSON.stringify({
      version: 1,
      globalMaxWeight: null,
      tagMaxWeights: {},
      killSignal: false,
      status: "ok",
      pulseInterval: pulseIntervalMs,
      leaseDurationSeconds: 60,
      issuedAt: Date.now(),
    });
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const send = (status, body, headers = {}) => {
        res.writeHead(status, { "content-type": "application/json", ...headers });
        res.end(body);
      };
      if (req.method === "POST" && req.url === "/v1/auth/token") {
        return send(200, JSON.stringify({ token: `jwt_${randomUUID()}`, expiresAt: Date.now() + 15 * 60_000, orgId: "org_bench" }));
      }
      if (req.method === "POST" && req.url === "/v1/pulse") {
        pulses++;
        return send(200, policy(), { etag: '"1"' });
      }
      if (req.method === "GET" && req.url?.startsWith("/v1/policy/")) {
        if (req.headers["if-none-match"] === '"1"') {
          res.writeHead(304, { etag: '"1"' });
          return res.end();
        }
        return send(200, policy(), { etag: '"1"' });
      }
      send(404, JSON.stringify({ error: { code: "NOT_FOUND", message: "no route" } }));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    publishKey,
    secretKey,
    get pulses() {
      return pulses;
    },
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
