/**
 * Edge parity (issue 6): the example Worker (examples/edge-worker, @waitstate/edge's
 * wasm gate under its own `wrangler dev`) and a Node SDK instance on the same
 * site of the real control plane (`wrangler dev`, local D1/KV/DO) hold the
 * same policy version and give the same `{allowed, reason}` for the same tags
 * and weights: under a throttle, a block and an untouched tag, then under the
 * kill switch.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
  policyVersion: number | null;
}

let cp: LocalControlPlane;
let tenant: Tenant;
let worker: EdgeWorker;
let ws: WaitState | undefined;
const nodeErrors: WaitStateError[] = [];

async function decision(tag: string, weight: number): Promise<Decision> {
  const { status, body } = await worker.getJson<Decision>(`/__waitstate/decision?tag=${encodeURIComponent(tag)}&weight=${weight}`);
  expect(status).toBe(200);
  return body;
}

/** The Worker's policy version, read through the decision route (a gate call of `free`, so also traffic for the rules). */
async function workerVersion(): Promise<number | null> {
  return (await decision("free", 1)).policyVersion;
}

interface Row {
  tag: string;
  weight: number;
  edge: { allowed: boolean; reason: string };
  node: { allowed: boolean; reason: string };
}

/**
 * Both sides over the whole grid, at one policy version: waits until both
 * hold the same version satisfying `ready`, runs the grid, and runs it again
 * if either side moved to another version meanwhile.
 */
async function compareGrid(
  ready: (policy: NonNullable<WaitState["policy"]>) => boolean,
  what: string,
): Promise<{ version: number; rows: Row[] }> {
  const client = ws!;
  for (let attempt = 0; attempt < 3; attempt++) {
    const version = await until(
      async () => {
        const policy = client.policy;
        if (policy === null || !ready(policy)) return undefined;
        const edgeVersion = await workerVersion();
        return edgeVersion === policy.version ? edgeVersion : undefined;
      },
      20_000,
      `the Worker and the Node client on one policy version (${what})`,
    );
    const rows: Row[] = [];
    for (const tag of TAGS) {
      for (const weight of WEIGHTS) {
        const edge = await decision(tag, weight);
        const node = client.gate(tag, weight);
        rows.push({
          tag,
          weight,
          edge: { allowed: edge.allowed, reason: edge.reason },
          node: { allowed: node.allowed, reason: node.reason },
        });
      }
    }
    if (client.policy?.version === version && (await workerVersion()) === version) return { version, rows };
  }
  throw new Error(`the policy kept changing while the grid ran (${what})`);
}

beforeAll(async () => {
  cp = await startLocalControlPlane();
  tenant = await cp.tenant("Edge parity", "enterprise");
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
  });
});

afterAll(async () => {
  await ws?.shutdown();
  await worker?.stop();
  await cp?.dispose();
});

describe("@waitstate/edge Worker and @waitstate/sdk on one site", () => {
  it("the Worker exchanges its keys, reads the policy and pulses on its own", async () => {
    // Its first sync (started by the harness's readiness probe): the pulse and the JWT policy read.
    const status = await until(
      async () => {
        const body = (await worker.getJson<Record<string, unknown>>("/__waitstate/status")).body;
        return body.synced === true && (body.policyReads as number) >= 1 ? body : undefined;
      },
      10_000,
      "the Worker's first sync",
    );
    expect(status).toMatchObject({ configured: true, authenticated: true, siteId: SITE, pulseIntervalMs: 1000, policyReadFailures: 0 });
    expect(status.tokens).toBe(1);
    expect(status.policyVersion).toEqual(expect.any(Number));

    // Requests through the gating path with a tag only the Worker uses: the aggregator creates it from its pulses.
    const res = await worker.getJson<{ allowed: boolean; reason: string }>("/some/path", {
      "x-waitstate-tag": "edge-only",
      "x-waitstate-weight": "2",
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ allowed: true, reason: "allowed" });
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
    const after = (await worker.getJson<Record<string, unknown>>("/__waitstate/status")).body;
    expect(after.pulses as number).toBeGreaterThanOrEqual(2);
    expect(after.pulseFailures).toBe(0);
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

    const { version, rows } = await compareGrid(
      (p) => p.tagMaxWeights.free === 5 && p.tagMaxWeights.pro === 0 && !p.killSignal,
      "rules applied",
    );
    expect(version).toBeGreaterThan(1);
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
  }, 45_000);

  it("follows the kill switch like the Node SDK, and its release", async () => {
    const client = ws!;
    const before = client.policy!.version;
    await cp.api("POST", `/v1/sites/${SITE}/kill`, tenant.managementToken, { enabled: true });
    const killed = await compareGrid((p) => p.killSignal && p.version > before, "kill switch on");
    for (const row of killed.rows) {
      expect(row.edge, `${row.tag} × ${row.weight}`).toEqual(row.node);
      expect(row.edge).toEqual({ allowed: false, reason: "kill_signal" });
    }
    const res = await worker.getJson<{ error: { reason: string } }>("/", { "x-waitstate-tag": "enterprise" });
    expect([res.status, res.body.error.reason]).toEqual([429, "kill_signal"]);

    await cp.api("POST", `/v1/sites/${SITE}/kill`, tenant.managementToken, { enabled: false });
    const released = await compareGrid((p) => !p.killSignal && p.version > killed.version, "kill switch off");
    for (const row of released.rows) expect(row.edge, `${row.tag} × ${row.weight}`).toEqual(row.node);
    expect(released.rows.find((r) => r.tag === "enterprise" && r.weight === 11)!.edge).toEqual({ allowed: true, reason: "allowed" });
    expect(nodeErrors).toEqual([]);
  }, 45_000);
});
