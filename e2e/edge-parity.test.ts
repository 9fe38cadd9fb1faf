/**
 * Edge parity (issues 6 and 16): the example Worker (examples/edge-worker: 40
 * lines over `withWaitState`, under its own `wrangler dev`, proxying to an
 * origin this test runs) and a Node SDK instance on the same site of the real
 * control plane (`wrangler dev`, local D1/KV/DO) give the same `{allowed,
 * reason}` for the same tags and weights: under a throttle, a block and an
 * untouched tag, then under the kill switch. Then telemetry: a p95 rule fed
 * only by the Worker's latencies fires (blocking a tag within about 2 pulse
 * intervals) and clears, as one fed only by the Node instance does; a per-tag
 * error-rate rule fed by the Worker's 5xx and a custom-metric rule fed by an
 * edge client fire.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WaitState as EdgeWaitState } from "@waitstate/edge";
import { WaitState, type WaitStateError } from "../sdk-node/src/index.js";
import { startLocalControlPlane, type LocalControlPlane, type Tenant } from "../scripts/local-control-plane.mjs";
import { startEdgeWorker, type EdgeWorker } from "./support/edge-worker.js";
import { until } from "./support/wait.js";

const SITE = "edge-parity";
const TAGS = ["free", "pro", "enterprise", "no-such-tag", "__default__"] as const;
// NaN cannot be written in a query string (the Worker reads "NaN" as NaN → 1, as gate() does, but that is not the point here).
const WEIGHTS = [0, 1, 3, 5, 5.0001, 7, 10, 11] as const;

interface Decision {
  allowed: boolean;
  reason: string;
}

/** The Worker's origin: answers like the example without one, after a delay and with a status set per tag by the tests. */
const originDelayMs = new Map<string, number>();
const originStatus = new Map<string, number>();
let origin: Server;

interface SiteStatus {
  window: { calls: number; instances: number };
  tags: Record<string, { calls: number; errors: number; p95: number | null }>;
  rules: Array<{ id: string; active: boolean; value: number | null }>;
  timing: { pulseIntervalMs: number };
}
const siteStatus = () => cp.api<SiteStatus>("GET", `/v1/sites/${SITE}/status`, tenant.managementToken);

/** A reflex rule of this site blocking `tagName` while `metric` (of `metricTag`) is at least `threshold`. */
async function blockWhen(tagName: string, metric: string, metricTag: string, threshold: number): Promise<string> {
  const rule = await cp.api<{ id: string }>("POST", "/v1/reflex-rules", tenant.managementToken, {
    tagName,
    metric,
    metricTag,
    operator: "gte",
    threshold,
    action: "block",
    priority: 1,
    cooldownSeconds: 1,
    siteId: SITE,
  });
  return rule.id;
}

let cp: LocalControlPlane;
let tenant: Tenant;
let worker: EdgeWorker;
let ws: WaitState | undefined;
const nodeErrors: WaitStateError[] = [];

/** The Worker's decision for a tag and weight: a request through its gated path (a 429's reason, or the origin's 200). */
async function decision(tag: string, weight: number): Promise<Decision> {
  const res = await worker.getJson<{ error?: { reason: string } } & Partial<Decision>>("/api", {
    "x-waitstate-tag": tag,
    "x-waitstate-weight": String(weight),
  });
  if (res.status === 429) return { allowed: false, reason: res.body.error!.reason };
  expect(res.status).toBe(200);
  return { allowed: true, reason: "allowed" };
}

interface Row {
  tag: string;
  weight: number;
  edge: { allowed: boolean; reason: string };
  node: { allowed: boolean; reason: string };
}

/**
 * Both sides over the whole grid once the Node client holds a policy
 * satisfying `ready`: the grid is run until the Worker (whose policy arrives
 * by its own syncs) agrees with the Node client everywhere, or the time is up.
 */
async function compareGrid(ready: (policy: NonNullable<WaitState["policy"]>) => boolean, what: string): Promise<{ rows: Row[] }> {
  const client = ws!;
  await until(() => client.policy !== null && ready(client.policy), 20_000, `the Node client's policy (${what})`);
  let rows: Row[] = [];
  await until(
    async () => {
      rows = [];
      for (const tag of TAGS) {
        for (const weight of WEIGHTS) {
          const edge = await decision(tag, weight);
          const node = client.gate(tag, weight);
          rows.push({ tag, weight, edge, node: { allowed: node.allowed, reason: node.reason } });
        }
      }
      return rows.every((r) => r.edge.allowed === r.node.allowed && r.edge.reason === r.node.reason);
    },
    20_000,
    `the Worker deciding as the Node client does (${what})`,
    200,
  ).catch(() => undefined); // the assertions below name the rows that differ
  return { rows };
}

beforeAll(async () => {
  origin = createServer((req, res) => {
    const tag = String(req.headers["x-waitstate-tag"] ?? "");
    setTimeout(() => {
      res.writeHead(originStatus.get(tag) ?? 200, { "content-type": "application/json" });
      res.end(JSON.stringify({ allowed: true, reason: "allowed" }));
    }, originDelayMs.get(tag) ?? 0);
  });
  await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve));
  cp = await startLocalControlPlane();
  tenant = await cp.tenant("Edge parity", "enterprise");
  // A short window and cooldown, so the telemetry rules below fire and clear within seconds.
  await cp.api("POST", "/v1/sites", tenant.managementToken, {
    siteId: SITE,
    pulseIntervalMs: 1000,
    leaseDurationSeconds: 60,
    windowSeconds: 2,
  });
  await Promise.all(
    ["free", "pro", "enterprise"].map((name) => cp.api("POST", "/v1/tags", tenant.managementToken, { name, maxWeight: 10 })),
  );
  // The Node instance first: its first pulse creates the site, so the Worker's first sync can read the policy too.
  ws = new WaitState({
    publishKey: tenant.publishKey,
    secretKey: tenant.secretKey,
    baseUrl: cp.url,
    siteId: SITE,
    instanceId: "node-1",
    onError: (e) => nodeErrors.push(e),
  });
  if (!(await ws.ready(15_000))) throw new Error("the Node client did not sync");
  worker = await startEdgeWorker({
    WAITSTATE_URL: cp.url,
    WAITSTATE_PUBLISH_KEY: tenant.publishKey,
    WAITSTATE_SECRET_KEY: tenant.secretKey,
    WAITSTATE_SITE_ID: SITE,
    ORIGIN_URL: `http://127.0.0.1:${(origin.address() as AddressInfo).port}`,
  });
});

afterAll(async () => {
  await ws?.shutdown();
  await worker?.stop();
  await cp?.dispose();
  await new Promise((resolve) => origin?.close(resolve));
});

describe("@waitstate/edge Worker and @waitstate/sdk on one site", () => {
  it("the Worker exchanges its keys, reads the policy and pulses on its own", async () => {
    // Requests through the gated path with a tag only the Worker uses: the aggregator creates it from its pulses.
    const res = await worker.getJson<{ allowed: boolean; reason: string }>("/some/path", {
      "x-waitstate-tag": "edge-only",
      "x-waitstate-weight": "2",
    });
    expect([res.status, res.body]).toEqual([200, { allowed: true, reason: "allowed" }]);
    const tag = await until(
      async () => {
        await worker.getJson("/", { "x-waitstate-tag": "edge-only" });
        const { tags } = await cp.api<{ tags: Array<{ name: string; autoCreated: boolean }> }>("GET", "/v1/tags", tenant.managementToken);
        return tags.find((t) => t.name === "edge-only");
      },
      15_000,
      "the tag `edge-only`, seen only in the Worker's pulses",
    );
    expect(tag.autoCreated).toBe(true);
    const status = await until(
      async () => {
        await worker.getJson("/", { "x-waitstate-tag": "edge-only" });
        const s = await siteStatus();
        return s.window.instances === 2 && (s.tags["edge-only"]?.calls ?? 0) > 0 ? s : undefined;
      },
      10_000,
      "the Worker and the Node client both in the site's window",
    );
    expect(status.tags["edge-only"]!.p95).not.toBeNull(); // the Worker's latencies arrive as a histogram
  }, 40_000);

  it("decides like the Node SDK under a throttle, a block and an untouched tag", async () => {
    const rule = (tagName: string, action: "throttle" | "block", actionValue?: number) =>
      cp.api("POST", "/v1/reflex-rules", tenant.managementToken, {
        tagName,
        metric: "rps",
        operator: "gte",
        threshold: 0,
        action,
        ...(actionValue !== undefined ? { actionValue } : {}),
        priority: 1,
        cooldownSeconds: 0,
        siteId: SITE,
      });
    await Promise.all([rule("free", "throttle", 0.5), rule("pro", "block")]);

    const client = ws!;

    const { rows } = await compareGrid((p) => p.tagMaxWeights.free === 5 && p.tagMaxWeights.pro === 0 && !p.killSignal, "rules applied");
    expect(client.policy?.tagMaxWeights).toEqual({ free: 5, pro: 0 });

    for (const row of rows) expect(row.edge, `${row.tag} × ${row.weight}`).toEqual(row.node);
    const seen = (tag: string, weight: number) => rows.find((r) => r.tag === tag && r.weight === weight)!.edge;
    // The grid covers every kind of answer, so parity is not vacuous.
    expect(seen("free", 5)).toEqual({ allowed: true, reason: "allowed" });
    expect(seen("free", 5.0001)).toEqual({ allowed: false, reason: "over_weight" });
    expect(seen("pro", 0)).toEqual({ allowed: false, reason: "tag_blocked" });
    expect(seen("enterprise", 11)).toEqual({ allowed: true, reason: "allowed" });
    expect(seen("no-such-tag", 11)).toEqual({ allowed: true, reason: "allowed" });
    expect(seen("__default__", 1)).toEqual({ allowed: true, reason: "allowed" });
    expect(rows.filter((r) => r.edge.reason === "over_weight").length).toBeGreaterThanOrEqual(1);
    expect(rows.filter((r) => r.edge.reason === "tag_blocked").length).toBe(WEIGHTS.length);

    // The gating path: a denial is the Node middlewares' 429; an allowed request passes.
    const denied = await worker.getJson<{ error: { code: string; message: string; reason: string } }>("/api", {
      "x-waitstate-tag": "free",
      "x-waitstate-weight": "7",
    });
    expect(denied.status).toBe(429);
    expect(denied.headers.get("retry-after")).toBe("1");
    expect(denied.body.error).toMatchObject({ code: "RATE_LIMITED", reason: "over_weight" });
    expect(denied.body.error.message).toMatch(/over the current limit/);
    const blocked = await worker.getJson<{ error: { reason: string } }>("/api", { "x-waitstate-tag": "pro" });
    expect([blocked.status, blocked.body.error.reason]).toEqual([429, "tag_blocked"]);
    const passed = await worker.getJson("/api", { "x-waitstate-tag": "free", "x-waitstate-weight": "5" });
    expect([passed.status, passed.body]).toEqual([200, { allowed: true, reason: "allowed" }]);
    // The Node middlewares' 429, byte for byte (protocol/src/middleware.ts).
    expect(denied.body.error.message).toBe("Too many requests: the request's weight is over the current limit (reason: over_weight).");
  }, 45_000);

  it("follows the kill switch like the Node SDK, and its release", async () => {
    const client = ws!;
    const before = client.policy!.version;
    await cp.api("POST", `/v1/sites/${SITE}/kill`, tenant.managementToken, { enabled: true });
    const killed = await compareGrid((p) => p.killSignal && p.version > before, "kill switch on");
    const killedVersion = client.policy!.version;
    for (const row of killed.rows) {
      expect(row.edge, `${row.tag} × ${row.weight}`).toEqual(row.node);
      expect(row.edge).toEqual({ allowed: false, reason: "kill_signal" });
    }
    const res = await worker.getJson<{ error: { reason: string } }>("/", { "x-waitstate-tag": "enterprise" });
    expect([res.status, res.body.error.reason]).toEqual([429, "kill_signal"]);

    await cp.api("POST", `/v1/sites/${SITE}/kill`, tenant.managementToken, { enabled: false });
    const released = await compareGrid((p) => !p.killSignal && p.version > killedVersion, "kill switch off");
    for (const row of released.rows) expect(row.edge, `${row.tag} × ${row.weight}`).toEqual(row.node);
    expect(released.rows.find((r) => r.tag === "enterprise" && r.weight === 11)!.edge).toEqual({ allowed: true, reason: "allowed" });
    expect(nodeErrors).toEqual([]);
  }, 45_000);
});

describe("telemetry from the edge drives the rules as the Node SDK's does", () => {
  it("a p95 rule fed only by the Worker blocks a tag within about 2 pulse intervals, and clears", async () => {
    const ruleId = await blockWhen("edge-victim", "p95_latency", "edge-slow", 200);
    expect((await decision("edge-victim", 1)).allowed).toBe(true);
    // Only the Worker sees `edge-slow` (its origin answers it in 300 ms); the Node instance never names it.
    originDelayMs.set("edge-slow", 300);
    await Promise.all(Array.from({ length: 8 }, () => worker.getJson("/api", { "x-waitstate-tag": "edge-slow" })));
    const slowDone = Date.now();
    const blocked = await until(
      async () => {
        const d = await decision("edge-victim", 1);
        return d.allowed ? undefined : d;
      },
      20_000,
      "the Worker blocking `edge-victim` on its own p95",
      50,
    );
    const reactionMs = Date.now() - slowDone;
    expect(blocked.reason).toBe("tag_blocked");
    const fired = await siteStatus();
    const rule = fired.rules.find((r) => r.id === ruleId)!;
    expect(rule.active).toBe(true);
    // The fleet p95 of the Worker's histogram (~300 ms), not a mean of anything.
    expect(rule.value).toBeGreaterThanOrEqual(280);
    console.log(
      `edge p95 rule: the Worker denied the tag ${reactionMs} ms after its slow requests = ${(reactionMs / fired.timing.pulseIntervalMs).toFixed(2)} pulse intervals`,
    );
    // The Node instance follows the edge's numbers at its next sync.
    await until(() => ws!.gate("edge-victim").reason === "tag_blocked", 10_000, "the Node instance blocking `edge-victim`");

    // Fast again: once the slow samples leave the 2 s window and the cooldown passed, the rule clears.
    originDelayMs.set("edge-slow", 0);
    await until(
      async () => {
        await worker.getJson("/api", { "x-waitstate-tag": "edge-slow" });
        return (await decision("edge-victim", 1)).allowed;
      },
      20_000,
      "the Worker allowing `edge-victim` again",
      100,
    );
    expect((await siteStatus()).rules.find((r) => r.id === ruleId)!.active).toBe(false);
  }, 60_000);

  it("the same p95 rule fed only by the Node instance fires and clears alike", async () => {
    const client = ws!;
    const ruleId = await blockWhen("node-victim", "p95_latency", "node-slow", 200);
    const slow = () => {
      for (let i = 0; i < 8; i++) {
        client.gate("node-slow");
        client.reportLatency(300, "node-slow");
      }
    };
    slow();
    await until(
      async () => (await decision("node-victim", 1)).allowed === false,
      20_000,
      "the Worker blocking `node-victim` on the Node instance's p95",
    );
    expect(client.gate("node-victim")).toEqual({ allowed: false, reason: "tag_blocked" });
    expect((await siteStatus()).rules.find((r) => r.id === ruleId)!.value).toBeGreaterThanOrEqual(280);
    await until(
      async () => {
        client.gate("node-slow");
        client.reportLatency(5, "node-slow");
        return (await decision("node-victim", 1)).allowed && client.gate("node-victim").allowed;
      },
      20_000,
      "both allowing `node-victim` again",
      200,
    );
  }, 60_000);

  it("a per-tag error-rate rule fires on the Worker's 5xx answers", async () => {
    await blockWhen("edge-err-victim", "error_rate", "edge-err", 0.5);
    originStatus.set("edge-err", 503);
    await until(
      async () => {
        const res = await worker.getJson("/api", { "x-waitstate-tag": "edge-err" });
        expect(res.status).toBe(503); // the origin's answer passes through; withWaitState reports it as an error of the tag
        return (await decision("edge-err-victim", 1)).reason === "tag_blocked";
      },
      20_000,
      "the error-rate rule on the Worker's 5xx",
      200,
    );
    const status = await siteStatus();
    expect(status.tags["edge-err"]!.errors).toBeGreaterThan(0);
    expect(status.tags["edge-err"]!.errors).toBe(status.tags["edge-err"]!.calls);
    originStatus.delete("edge-err");
  }, 40_000);

  it("a custom-metric rule fires on what an edge client reports", async () => {
    await blockWhen("edge-q-victim", "queue_depth", "edge-q", 10);
    const edge = new EdgeWaitState({
      publishKey: tenant.publishKey,
      secretKey: tenant.secretKey,
      baseUrl: cp.url,
      siteId: SITE,
      instanceId: "edge-custom",
    });
    expect(await edge.ready(15_000)).toBe(true);
    const result = await until(
      async () => {
        edge.gate("edge-q");
        edge.report("queue_depth", 50, "edge-q");
        await edge.sync();
        const r = edge.gate("edge-q-victim");
        return r.allowed ? undefined : r;
      },
      20_000,
      "the edge client blocked by the rule on its own custom metric",
      250,
    );
    expect(result).toEqual({ allowed: false, reason: "tag_blocked" });
  }, 40_000);
});
