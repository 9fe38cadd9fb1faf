/**
 * A policy that can always be enforced, and pulses that cannot blind a site,
 * against the real control plane (wrangler dev) with real Node SDK clients:
 * 4,097 tags + an all-traffic rule + the kill switch still reach every
 * instance as kill_signal; two processes sharing an instanceId lose no call
 * across a restart of the control plane and are told (DUPLICATE_INSTANCE).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WaitState, type WaitStateError } from "../sdk-node/src/index.js";
import { createSignedHeaders } from "../sdk-node/src/signing.js";
import { eventually, sleep } from "../sdk-node/test/support/client.js";
import { startLocalControlPlane, type LocalControlPlane, type Tenant } from "../scripts/local-control-plane.mjs";

let cp: LocalControlPlane;

beforeAll(async () => {
  cp = await startLocalControlPlane();
});
afterAll(async () => {
  await cp?.dispose();
});

function client(tenant: Tenant, siteId: string, instanceId: string, errors: WaitStateError[]) {
  return new WaitState({
    publishKey: tenant.publishKey,
    secretKey: tenant.secretKey,
    baseUrl: cp.url,
    siteId,
    instanceId,
    onError: (e) => errors.push(e),
  });
}

async function usageOf(tenant: Tenant): Promise<number> {
  const usage = await cp.api<{ usage: Array<{ calls: number }> }>("GET", "/v1/usage", tenant.managementToken);
  return usage.usage.reduce((n, m) => n + m.calls, 0);
}

describe("a policy every SDK can install", () => {
  it("4,096 tags from pulses, one more refused by POST /v1/tags, an all-traffic rule, a rule on a tag past the cap and the kill switch: every instance denies with kill_signal", async () => {
    const tenant = await cp.tenant("Many Tags", "enterprise");
    const site = "many-tags";
    let ts = Date.now();
    for (let chunk = 0; chunk < 8; chunk++) {
      const tagMetrics = Array.from({ length: 512 }, (_, i) => ({ tag: `tag-${String(chunk * 512 + i).padStart(4, "0")}`, count: 1 }));
      const body = JSON.stringify({
        instanceId: "loader",
        siteId: site,
        usageDelta: 512,
        bouncedUnits: 0,
        metrics: { latency: 5, errors: 0 },
        tagMetrics,
        ts: ts++,
      });
      const res = await fetch(`${cp.url}/v1/pulse`, {
        method: "POST",
        headers: createSignedHeaders(body, tenant.publishKey, tenant.secretKey),
        body,
      });
      expect(res.status, await res.text()).toBe(200);
    }
    const refused = await fetch(`${cp.url}/v1/tags`, {
      method: "POST",
      headers: { authorization: `Bearer ${tenant.managementToken}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "tag-4096" }),
    });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("PLAN_LIMIT_REACHED");
    // Two tiers, so an all-traffic rule gives every tag an entry; plus a rule on a tag that could not be created: 4,097 entries.
    // The listing comes in pages: follow nextCursor.
    const tags: { tags: Array<{ id: string; name: string }> } = { tags: [] };
    for (let cursor: string | null = null, first = true; first || cursor !== null; first = false) {
      const page: { tags: Array<{ id: string; name: string }>; nextCursor: string | null } = await cp.api(
        "GET",
        `/v1/tags?limit=1000${cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`}`,
        tenant.managementToken,
      );
      tags.tags.push(...page.tags);
      cursor = page.nextCursor;
    }
    expect(tags.tags).toHaveLength(4096);
    await cp.api("PATCH", `/v1/tags/${tags.tags.find((t) => t.name === "tag-4095")!.id}`, tenant.managementToken, { priority: 5 });
    const rule = { metric: "rps", operator: "gte", threshold: 0, cooldownSeconds: 0, siteId: site };
    await cp.api("POST", "/v1/reflex-rules", tenant.managementToken, {
      ...rule,
      tagName: null,
      action: "throttle",
      actionValue: 0.5,
      priority: 1,
    });
    await cp.api("POST", "/v1/reflex-rules", tenant.managementToken, { ...rule, tagName: "ghost", action: "block", priority: 2 });

    const errors: WaitStateError[] = [];
    const instances = [client(tenant, site, "node-a", errors), client(tenant, site, "node-b", errors)];
    try {
      for (const ws of instances) expect(await ws.ready(15_000)).toBe(true);
      await eventually(() => instances.every((ws) => ws.policy?.globalMaxWeight === 5), 15_000, "the rules' policy");
      for (const ws of instances) {
        expect(Object.keys(ws.policy!.tagMaxWeights).length).toBeLessThanOrEqual(4096);
        expect(ws.policy!.tagMaxWeights.ghost).toBe(0);
      }
      await cp.api("POST", `/v1/sites/${site}/kill`, tenant.managementToken, { enabled: true });
      await eventually(
        () => instances.every((ws) => ws.gate("tag-0001").reason === "kill_signal"),
        15_000,
        "kill_signal on every instance",
      );
      for (const ws of instances) {
        for (const tag of ["tag-0000", "tag-4095", "ghost", "never-seen", "__default__"])
          expect(ws.gate(tag)).toEqual({ allowed: false, reason: "kill_signal" });
        expect(ws.status().safeMode).toBe(false);
      }
    } finally {
      await Promise.all(instances.map((ws) => ws.shutdown()));
    }
    expect(errors.filter((e) => e.code === "INVALID_POLICY")).toEqual([]);
  }, 120_000);
});

describe("two processes sharing an instanceId", () => {
  it("lose no call across a restart of the control plane, and both are told DUPLICATE_INSTANCE", async () => {
    const tenant = await cp.tenant("Twins", "enterprise");
    const errors: WaitStateError[][] = [[], []];
    const twins = [client(tenant, "twins", "shared", errors[0]!), client(tenant, "twins", "shared", errors[1]!)];
    let calls = 0;
    let running = true;
    const traffic = (async () => {
      while (running) {
        for (const ws of twins) {
          ws.gate(calls % 2 === 0 ? "free" : "pro");
          calls++;
        }
        await sleep(2);
      }
    })();
    try {
      for (const ws of twins) expect(await ws.ready(15_000)).toBe(true);
      await sleep(3000);
      await cp.stop();
      await sleep(2000);
      await cp.start();
      await eventually(() => twins.every((ws) => ws.status().lastSyncAt! > Date.now() - 1500), 20_000, "both to resync");
      await sleep(3000);
    } finally {
      running = false;
      await traffic;
      await Promise.all(twins.map((ws) => ws.shutdown()));
    }
    for (const list of errors)
      expect(
        list.some((e) => e.code === "DUPLICATE_INSTANCE"),
        list.map((e) => e.code).join(),
      ).toBe(true);
    expect(
      errors
        .flat()
        .filter((e) => !["DUPLICATE_INSTANCE", "PULSE_FAILED", "POLICY_FETCH_FAILED", "AUTH_FAILED", "PUSH_FAILED"].includes(e.code)),
    ).toEqual([]);
    // The ledger is written by the aggregator's rollup of complete minutes.
    let ledger = 0;
    const deadline = Date.now() + 150_000;
    while ((ledger = await usageOf(tenant)) < calls && Date.now() < deadline) await sleep(2000);
    expect(ledger).toBe(calls);
  }, 240_000);
});
