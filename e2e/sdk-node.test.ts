/**
 * @waitstate/sdk against the real control plane (wrangler dev, local D1/KV/DO):
 * the key exchange, signed pulses accepted, and a reflex rule's policy change
 * reaching gate() — then its removal; the operator's plan change and
 * suspension reaching the client. (The usage ledger across a restart is the
 * closed-loop suite's.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WaitState, type WaitStateError } from "../sdk-node/src/index.js";
import { eventually } from "../sdk-node/test/support/client.js";
import { startLocalControlPlane, type LocalControlPlane, type Tenant } from "../scripts/local-control-plane.mjs";

let cp: LocalControlPlane;
let tenant: Tenant;

beforeAll(async () => {
  cp = await startLocalControlPlane();
  tenant = await cp.tenant("SDK E2E", "enterprise");
});
afterAll(async () => {
  await cp?.dispose();
});

describe("@waitstate/sdk against wrangler dev", () => {
  it("authenticates, pulses, follows a rule's policy change and its removal", async () => {
    const errors: WaitStateError[] = [];
    const ws = new WaitState({
      publishKey: tenant.publishKey,
      secretKey: tenant.secretKey,
      baseUrl: cp.url,
      siteId: "sdk-e2e",
      instanceId: "node-1",
      onError: (e) => errors.push(e),
    });
    let calls = 0;
    const call = (tag: string, weight = 1) => {
      calls++;
      return ws.gate(tag, weight);
    };
    try {
      expect(await ws.ready(15_000)).toBe(true);
      await eventually(() => ws.status().authenticated, 10_000, "the JWT");
      expect(ws.status()).toMatchObject({ synced: true, policyStatus: "ok", pulseIntervalMs: 1000 }); // enterprise plan
      expect(call("free")).toEqual({ allowed: true, reason: "allowed" });

      // a rule that holds whenever the site has traffic
      const rule = await cp.api<{ id: string }>("POST", "/v1/reflex-rules", tenant.managementToken, {
        tagName: "free",
        metric: "rps",
        operator: "gte",
        threshold: 0,
        action: "block",
        priority: 1,
        cooldownSeconds: 0,
        siteId: "sdk-e2e",
      });
      const blockedAfter = await eventually(() => call("free").reason === "tag_blocked", 15_000, "free blocked");
      expect(call("pro")).toEqual({ allowed: true, reason: "allowed" });
      expect(ws.policy?.tagMaxWeights).toMatchObject({ free: 0 });
      // within a few pulse intervals of 1 s
      expect(blockedAfter).toBeLessThan(5000);

      await cp.api("DELETE", `/v1/reflex-rules/${rule.id}`, tenant.managementToken);
      await eventually(() => call("free").allowed, 15_000, "free allowed again");
    } finally {
      await ws.shutdown();
    }
    expect(errors).toEqual([]);
    expect(calls).toBeGreaterThan(2);
  });

  it("follows the operator's plan change, then stands down (failing open) when the organization is suspended", async () => {
    const plans = await cp.tenant("Plans E2E", "enterprise");
    const errors: WaitStateError[] = [];
    const ws = new WaitState({
      publishKey: plans.publishKey,
      secretKey: plans.secretKey,
      baseUrl: cp.url,
      siteId: "plans-e2e",
      instanceId: "node-plans",
      onError: (e) => errors.push(e),
    });
    try {
      expect(await ws.ready(15_000)).toBe(true);
      expect(ws.status()).toMatchObject({ policyStatus: "ok", pulseIntervalMs: 1000 });
      expect(ws.policy?.leaseDurationSeconds).toBe(60);

      await cp.api("PATCH", `/v1/admin/organizations/${plans.orgId}`, cp.adminToken, { plan: "pro" });
      await eventually(() => ws.status().pulseIntervalMs === 2000, 15_000, "the pro plan's pulse interval");
      expect(ws.policy?.leaseDurationSeconds).toBe(120);

      await cp.api("PATCH", `/v1/admin/organizations/${plans.orgId}`, cp.adminToken, { suspended: true });
      // A push brings the suspended policy first (gate() fails open at once); the stand-down follows the next pulse's answer.
      await eventually(() => ws.status().policyStatus === "suspended", 15_000, "the suspended policy");
      await eventually(() => ws.status().suspendedUntil !== null, 15_000, "the stand-down");
      const status = ws.status();
      // stands down for retryAfterSeconds (300 s), with no safe mode meanwhile, and fails open
      expect(status.suspendedUntil).toBeGreaterThan(Date.now() + 250_000);
      expect(status.safeMode).toBe(false);
      expect(ws.policy?.retryAfterSeconds).toBe(300);
      expect(ws.gate("free", 1_000_000)).toEqual({ allowed: true, reason: "suspended" });

      const audit = await cp.api<{ entries: Array<{ kind: string; actor: { type: string } }> }>(
        "GET",
        "/v1/audit-log?kind=org.*",
        plans.managementToken,
      );
      expect(audit.entries.map((e) => [e.kind, e.actor.type])).toEqual([
        ["org.suspended", "admin"],
        ["org.plan_changed", "admin"],
        ["org.created", "admin"],
      ]);
    } finally {
      await ws.shutdown();
    }
    expect(errors).toEqual([]);
  });
});
