// `node bench/push.bench.mjs` (after `node scripts/setup.mjs`): how fast a
// policy change reaches the instances of one site by push, through the real
// control plane under `wrangler dev`, and what idle subscribers cost it.
//
// Propagation: a site per N (1, 10, 100, 1000 subscribers) with a 30 s pulse
// interval. The kill switch is turned on, then off, through the management API
// (POST /v1/sites/:id/kill), BENCH_PUSH_REPS times each way. Propagation = the
// last of the N instances enforcing − the moment the API request was sent.
// For N ≤ 100 the instances are real `WaitState` clients (push on) and
// "enforcing" is gate() answering `kill_signal` (then allowing again), read
// every 1 ms; for 1000 they are lightweight subscribers (the SDK's own
// WebSocket client, one JWT, no `WaitState`) and "enforcing" is the pushed
// policy parsed, timed in its message handler. Beside it, the pulse-only
// path: the same kill switch with `push: false` clients at a 1 s pulse
// interval (a 30 s one would take minutes per rep; its delay scales with the
// interval, so the 30 s figure is ~30 × this).
//
// Pulse throughput: signed pulses (8 concurrent, closed loop) to one site,
// without and with 1000 idle subscribers on that same site, in alternating
// rounds.
//
// Env: BENCH_PUSH_REPS (default 10), BENCH_PUSH_SIZES (default "1,10,100,1000"),
// BENCH_PUSH_ROUNDS (default 3 per side), BENCH_WRITE_README=0.
// Never asserted in tests: this machine is shared and noisy.
import http from "node:http";
import os from "node:os";
import { log } from "../scripts/lib.mjs";
import { startLocalControlPlane } from "../scripts/local-control-plane.mjs";
import { AuthManager, WaitState } from "../sdk-node/dist/sdk-node/src/index.js";
import { connectWebSocket } from "../sdk-node/dist/sdk-node/src/websocket.js";
import {
  guardControlPlane,
  median,
  nowMs,
  pulseTelemetryVariants,
  quantileSorted,
  signPulse,
  sleep,
  writeReadmeSection,
} from "./support.mjs";

const REPS = Number(process.env.BENCH_PUSH_REPS ?? 10);
const SIZES = (process.env.BENCH_PUSH_SIZES ?? "1,10,100,1000").split(",").map(Number);
const ROUNDS = Number(process.env.BENCH_PUSH_ROUNDS ?? 3);
const ROUND_MS = 4000;
const CONCURRENCY = 8;
const FULL_SDK_MAX = 100;
const PUSH_INTERVAL_MS = 30_000;
const PULSE_ONLY_INTERVAL_MS = 1000;
const PULSE_ONLY_SIZES = [1, 10, 100];
const PULSE_ONLY_REPS = 5;
const IDLE_SUBSCRIBERS = 1000;

const started = Date.now();
const loadBefore = os.loadavg()[0];
log("push bench: a fresh wrangler dev with its own local state");
const cp = await startLocalControlPlane({ quiet: true });
const stopControlPlane = guardControlPlane(cp);
const tenant = await cp.tenant("Push Co", "enterprise");
const token = tenant.managementToken;
const errors = {};
const countError = (e) => {
  errors[e.code] = (errors[e.code] ?? 0) + 1;
};

async function until(check, timeoutMs, everyMs = 10) {
  const deadline = nowMs() + timeoutMs;
  while (nowMs() < deadline) {
    if (await check()) return true;
    await sleep(everyMs);
  }
  return false;
}

async function createSite(siteId, intervalMs) {
  const lease = Math.max(60, (3 * intervalMs) / 1000);
  await cp.api("POST", "/v1/sites", token, {
    siteId,
    pulseIntervalMs: intervalMs,
    leaseDurationSeconds: lease,
    windowSeconds: Math.max(1, intervalMs / 1000),
  });
}

// ---------------------------------------------------------------- subscribers

/** N real SDK clients on `siteId`, synced (and subscribed when `push`). */
async function sdkFleet(siteId, n, push) {
  const clients = Array.from(
    { length: n },
    (_, i) =>
      new WaitState({
        publishKey: tenant.publishKey,
        secretKey: tenant.secretKey,
        baseUrl: cp.url,
        siteId,
        instanceId: `${siteId}-${i}`,
        push,
        onError: countError,
      }),
  );
  const synced = await Promise.all(clients.map((c) => c.ready(60_000)));
  if (!synced.every(Boolean)) throw new Error(`${siteId}: ${synced.filter((s) => !s).length} clients did not sync`);
  if (push && !(await until(() => clients.every((c) => c.status().pushConnected), 60_000)))
    throw new Error(`${siteId}: not every push channel opened`);
  return {
    size: n,
    enforcing: (killed) => clients.map((c) => (c.gate("free").reason === "kill_signal") === killed),
    close: () => Promise.all(clients.map((c) => c.shutdown())),
  };
}

let auth = null;
/** One JWT for the lightweight subscribers (the same key's token every SDK instance would hold). */
async function jwt() {
  if (auth === null) {
    auth = new AuthManager({ baseUrl: cp.url, publishKey: tenant.publishKey, secretKey: tenant.secretKey, onError: countError });
    if (!(await auth.authenticate())) throw new Error("token exchange failed");
  }
  return { token: auth.validToken(), orgId: auth.orgId };
}

/** N bare WebSocket subscribers on `siteId`: each keeps the last pushed policy's killSignal and when it arrived. */
async function lightFleet(siteId, n) {
  const { token: bearer, orgId } = await jwt();
  const url = `${cp.url}/v1/policy/${orgId}/subscribe?siteId=${encodeURIComponent(siteId)}`;
  const state = Array.from({ length: n }, () => ({ killed: null, at: 0, connection: null }));
  const open = async (i) => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const outcome = await connectWebSocket(url, {
        headers: { authorization: `Bearer ${bearer}` },
        timeoutMs: 30_000,
        handlers: {
          onText: (text) => {
            const at = nowMs();
            if (text === "pong") return;
            const message = JSON.parse(text);
            if (message.type !== "policy") return;
            state[i].killed = message.policy.killSignal === true;
            state[i].at = at;
          },
        },
      });
      if (outcome.ok) {
        state[i].connection = outcome.connection;
        return;
      }
      await sleep(200 * (attempt + 1));
    }
    throw new Error(`${siteId}: subscriber ${i} could not connect`);
  };
  // 50 handshakes at a time: wrangler dev's proxy is the bottleneck, not the aggregator.
  for (let i = 0; i < n; i += 50) await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, k) => open(i + k)));
  if (!(await until(() => state.every((s) => s.killed !== null), 30_000))) throw new Error(`${siteId}: initial policies missing`);
  return {
    size: n,
    state,
    enforcing: (killed) => state.map((s) => s.killed === killed),
    close: async () => {
      for (const s of state) s.connection?.close(1000, "bench over");
      await sleep(200);
    },
  };
}

// ---------------------------------------------------------------- propagation

/**
 * Turns the kill switch `on`; the last instance's enforcing moment, in ms after
 * the request was sent (`fromRequest`) and after the aggregator issued the
 * policy (`fromIssued`, its `issuedAt`: the same machine's clock); null on timeout.
 */
async function toggle(siteId, fleet, on, timeoutMs) {
  const sent = nowMs();
  const answered = cp.api("POST", `/v1/sites/${siteId}/kill`, token, { enabled: on });
  let last = null;
  if (fleet.state) {
    // lightweight: arrival times are stamped in the message handler
    await until(() => fleet.state.every((s) => s.killed === on), timeoutMs, 1);
    if (fleet.state.every((s) => s.killed === on)) last = Math.max(...fleet.state.map((s) => s.at));
  } else {
    const firsts = new Array(fleet.size).fill(null);
    await until(
      () => {
        const t = nowMs();
        fleet.enforcing(on).forEach((yes, i) => {
          if (yes && firsts[i] === null) firsts[i] = t;
        });
        return firsts.every((x) => x !== null);
      },
      timeoutMs,
      1,
    );
    if (firsts.every((x) => x !== null)) last = Math.max(...firsts);
  }
  const { policy } = await answered;
  if (last === null) return null;
  return { fromRequest: last - sent, fromIssued: last - policy.issuedAt };
}

function stats(samples) {
  const ok = samples.filter((x) => x !== null);
  const of = (key) => {
    const sorted = ok.map((x) => x[key]).sort((a, b) => a - b);
    return { median: median(sorted), p99: quantileSorted(sorted, 0.99), max: sorted.at(-1) ?? NaN };
  };
  return { measured: ok.length, timeouts: samples.length - ok.length, issued: of("fromIssued"), request: of("fromRequest") };
}

async function propagation(n, push) {
  const interval = push ? PUSH_INTERVAL_MS : PULSE_ONLY_INTERVAL_MS;
  const siteId = `${push ? "push" : "pulse"}-${n}`;
  await createSite(siteId, interval);
  const light = push && n > FULL_SDK_MAX;
  const fleet = light ? await lightFleet(siteId, n) : await sdkFleet(siteId, n, push);
  const reps = push ? REPS : PULSE_ONLY_REPS;
  const samples = [];
  try {
    for (let rep = 0; rep < reps; rep++) {
      for (const on of [true, false]) {
        const ms = await toggle(siteId, fleet, on, push ? 10_000 : 3 * interval + 5000);
        samples.push(ms);
        log(
          `${siteId} rep ${rep + 1} kill ${on ? "on " : "off"}: ${ms === null ? "TIMEOUT" : `${ms.fromIssued.toFixed(1)} ms after the policy was issued, ${ms.fromRequest.toFixed(1)} ms after the request`}`,
        );
        await sleep(push ? 100 + Math.random() * 200 : Math.random() * interval);
      }
    }
  } finally {
    await fleet.close();
  }
  return { n, push, light, interval, ...stats(samples) };
}

// ---------------------------------------------------------------- pulse throughput

const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
const telemetry = pulseTelemetryVariants(8);
let pulseSeq = 0;
const T0 = Date.now();

function postPulse(slot) {
  const { body, headers } = signPulse({
    instanceId: `tp-${slot}`,
    siteId: "throughput",
    ts: T0 + pulseSeq++,
    telemetry: telemetry[pulseSeq % telemetry.length],
    publishKey: tenant.publishKey,
    secretKey: tenant.secretKey,
  });
  const url = new URL(`${cp.url}/v1/pulse`);
  return new Promise((resolve) => {
    const req = http.request({ hostname: url.hostname, port: url.port, path: url.pathname, method: "POST", headers, agent }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("error", () => resolve(0));
    req.end(body);
  });
}

async function throughputRound() {
  let ok = 0;
  let failed = 0;
  const deadline = nowMs() + ROUND_MS;
  const t0 = nowMs();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, slot) => {
      while (nowMs() < deadline) {
        const status = await postPulse(slot);
        if (status >= 200 && status < 300) ok++;
        else failed++;
      }
    }),
  );
  return { rps: (ok / (nowMs() - t0)) * 1000, failed };
}

async function throughput() {
  await createSite("throughput", 1000);
  await throughputRound(); // warm-up
  const without = [];
  const withSubs = [];
  for (let round = 0; round < ROUNDS; round++) {
    without.push(await throughputRound());
    const idle = await lightFleet("throughput", IDLE_SUBSCRIBERS);
    await sleep(500);
    withSubs.push(await throughputRound());
    await idle.close();
    log(
      `throughput round ${round + 1}: ${without.at(-1).rps.toFixed(0)} pulses/s alone, ${withSubs.at(-1).rps.toFixed(0)} with ${IDLE_SUBSCRIBERS} idle subscribers`,
    );
  }
  return {
    without: median(without.map((r) => r.rps)),
    with: median(withSubs.map((r) => r.rps)),
    failed: [...without, ...withSubs].reduce((n, r) => n + r.failed, 0),
  };
}

// ---------------------------------------------------------------- run and report

const rows = [];
let tp = null;
try {
  for (const n of SIZES) rows.push(await propagation(n, true));
  for (const n of PULSE_ONLY_SIZES.filter((n) => SIZES.includes(n))) rows.push(await propagation(n, false));
  tp = await throughput();
} finally {
  agent.destroy();
  await stopControlPlane();
}

const fmt = (ms) => (Number.isFinite(ms) ? ms.toFixed(1) : "—");
const pushRows = rows.filter((r) => r.push);
const pulseRow = (n) => rows.find((r) => !r.push && r.n === n);
const target = pushRows.find((r) => r.n === 100);
const lines = [
  `Control plane under \`wrangler dev\` on this machine (${os.cpus().length} cores, shared; load average ${loadBefore.toFixed(2)} before the run), Node ${process.version}.`,
  `Kill switch on, then off, through \`POST /v1/sites/:id/kill\`, ${REPS} times each way per site; **propagation** = the last of the N instances enforcing − the aggregator issuing the policy (its \`issuedAt\`, same machine's clock); **from the request** adds the API call's own work before that (auth, the D1 write).`,
  `Push: pulse interval 30 s; N ≤ ${FULL_SDK_MAX} are real \`WaitState\` clients (gate() read every 1 ms), N = 1000 are lightweight subscribers (the SDK's WebSocket client, no \`WaitState\`; the pushed policy parsed in the handler).`,
  `Pulse only: \`push: false\` clients at a ${PULSE_ONLY_INTERVAL_MS / 1000} s pulse interval, ${PULSE_ONLY_REPS} times each way: the last instance learns at its next pulse, so at 30 s expect ~30 × these.`,
  "",
  "| subscribers on the site | clients | push: propagation median ms | p99 ms | max ms | push: from the request median ms | p99 ms | pulse only (1 s interval): propagation median ms | p99 ms |",
  "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
];
for (const r of pushRows) {
  const p = pulseRow(r.n);
  lines.push(
    `| ${r.n} | ${r.light ? "lightweight subscribers" : "WaitState"} | ${fmt(r.issued.median)} | ${fmt(r.issued.p99)} | ${fmt(r.issued.max)}${r.timeouts ? ` (+${r.timeouts} timed out)` : ""} | ${fmt(r.request.median)} | ${fmt(r.request.p99)} | ${p ? fmt(p.issued.median) : "—"} | ${p ? fmt(p.issued.p99) : "—"} |`,
  );
}
lines.push("");
if (target) {
  lines.push(
    `Target: kill switch → every one of 100 connected instances denying, p99 ≤ 100 ms with a 30 s pulse interval: **${target.issued.p99 <= 100 && !target.timeouts ? "met" : "not met"}** (p99 ${fmt(target.issued.p99)} ms after the policy was issued; ${fmt(target.request.p99)} ms after the API request).`,
  );
}
if (tp) {
  lines.push(
    `Pulse throughput (${CONCURRENCY} concurrent, closed loop, ${ROUNDS} alternating rounds of ${ROUND_MS / 1000} s, medians): **${tp.without.toFixed(0)} pulses/s** alone, **${tp.with.toFixed(0)} pulses/s** with ${IDLE_SUBSCRIBERS} idle subscribers on the same site (${((tp.with / tp.without) * 100).toFixed(0)} %)${tp.failed ? `; ${tp.failed} pulses failed` : ""}.`,
  );
}
if (Object.keys(errors).length) lines.push(`SDK onError counts: ${JSON.stringify(errors)}.`);
lines.push(`Run: ${((Date.now() - started) / 1000).toFixed(0)} s.`);
const table = lines.join("\n");
process.stdout.write(`\n${table}\n\n`);
writeReadmeSection("push", table);
process.exit(0);
