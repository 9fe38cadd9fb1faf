/**
 * Push, end to end (issue 19's "Done when"): the real control plane under
 * `wrangler dev`, a site whose pulse interval is 30 s, three @waitstate/sdk
 * instances subscribed to its pushes. The kill switch, turned on through the
 * management API, has every instance denying within 1 s — the pulse path
 * would take up to 30 s, and the instances' `lastSyncAt` shows no pulse or
 * read brought it — then off again the same way; a reflex rule that fires
 * reaches them by push as well.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WaitState, type WaitStateError } from "../sdk-node/src/index.js";
import { eventually, sleep } from "../sdk-node/test/support/client.js";
import { startLocalControlPlane, type LocalControlPlane, type Tenant } from "../scripts/local-control-plane.mjs";

const SITE = "push-e2e";
const INTERVAL_MS = 30_000;

let cp: LocalControlPlane;
let tenant: Tenant;
const instances: WaitState[] = [];
const errors: WaitStateError[] = [];
const figures: string[] = [];

/** Polls every instance every 2 ms from now until each gate() result matches; each instance's first match, ms after `from`. */
async function firstMatches(check: (ws: WaitState) => boolean, from: number, timeoutMs: number, what: string): Promise<number[]> {
  const seen: Array<number | null> = instances.map(() => null);
  const deadline = Date.now() + timeoutMs;
  while (seen.some((t) => t === null)) {
    if (Date.now() > deadline) {
      throw new Error(`${what}: instances ${seen.map((t, i) => (t === null ? i + 1 : "")).join(" ")} did not within ${timeoutMs} ms`);
    }
    instances.forEach((ws, i) => {
      if (seen[i] === null && check(ws)) seen[i] = performance.now() - from;
    });
    await sleep(2);
  }
  return seen as number[];
}

beforeAll(async () => {
  cp = await startLocalControlPlane();
  tenant = await cp.tenant("Push E2E", "enterprise");
  await cp.api("POST", "/v1/sites", tenant.managementToken, {
    siteId: SITE,
    pulseIntervalMs: INTERVAL_MS,
    leaseDurationSeconds: 120,
    windowSeconds: 30,
  });
  for (let i = 1; i <= 3; i++) {
    instances.push(
      new WaitState({
        publishKey: tenant.publishKey,
        secretKey: tenant.secretKey,
        baseUrl: cp.url,
        siteId: SITE,
        instanceId: `push-${i}`,
        onError: (e) => errors.push(e),
      }),
    );
  }
  const synced = await Promise.all(instances.map((ws) => ws.ready(20_000)));
  expect(synced).toEqual([true, true, true]);
  await eventually(() => instances.every((ws) => ws.status().pushConnected), 20_000, "every push channel open");
}, 120_000);

afterAll(async () => {
  await Promise.all(instances.map((ws) => ws.shutdown()));
  await cp?.dispose();
  if (figures.length > 0) console.log(["push propagation under wrangler dev (3 instances, pulse interval 30 s):", ...figures].join("\n"));
});

describe.sequential("push under wrangler dev: one site, pulse interval 30 s, three SDK instances", () => {
  it("the instances run on the site's 30 s pulse interval", () => {
    for (const ws of instances) expect(ws.status()).toMatchObject({ synced: true, policyStatus: "ok", pulseIntervalMs: INTERVAL_MS });
    for (const ws of instances) expect(ws.gate("free")).toEqual({ allowed: true, reason: "allowed" });
  });

  it("the kill switch, turned on through the management API, has every instance denying within 1 s; off again the same way", async () => {
    const syncs = instances.map((ws) => ws.status().lastSyncAt);
    const start = performance.now();
    const denying = firstMatches((ws) => ws.gate("free").reason === "kill_signal", start, 10_000, "kill switch on");
    const on = await cp.api<{ policy: { version: number } }>("POST", `/v1/sites/${SITE}/kill`, tenant.managementToken, { enabled: true });
    const answered = performance.now() - start;
    const denied = await denying;
    figures.push(
      `  kill on:  API answered +${answered.toFixed(0)} ms; instances denying +${denied.map((t) => t.toFixed(0)).join(", +")} ms`,
    );
    expect(Math.max(...denied)).toBeLessThan(1000);
    // No pulse or policy read brought it: the lease clocks stand where the last sync left them.
    expect(instances.map((ws) => ws.status().lastSyncAt)).toEqual(syncs);
    for (const ws of instances) expect(ws.status().policyVersion).toBe(on.policy.version);

    const offStart = performance.now();
    const allowing = firstMatches((ws) => ws.gate("free").allowed, offStart, 10_000, "kill switch off");
    await cp.api("POST", `/v1/sites/${SITE}/kill`, tenant.managementToken, { enabled: false });
    const allowed = await allowing;
    figures.push(`  kill off: instances allowing +${allowed.map((t) => t.toFixed(0)).join(", +")} ms`);
    expect(Math.max(...allowed)).toBeLessThan(1000);
    expect(instances.map((ws) => ws.status().lastSyncAt)).toEqual(syncs);
  }, 30_000);

  it("a reflex rule that fires reaches every instance by push, long before their next pulse", async () => {
    const syncs = instances.map((ws) => ws.status().lastSyncAt);
    const start = performance.now();
    // Holds whenever it is evaluated (rps ≥ 0): it fires at the site's next evaluation.
    const rule = await cp.api<{ id: string }>("POST", "/v1/reflex-rules", tenant.managementToken, {
      tagName: "free",
      metric: "rps",
      operator: "gte",
      threshold: 0,
      action: "block",
      priority: 1,
      cooldownSeconds: 0,
      siteId: SITE,
    });
    // A fourth instance without push pulses at once: its pulse is an evaluation, if the rule's creation was not one.
    const trigger = new WaitState({
      publishKey: tenant.publishKey,
      secretKey: tenant.secretKey,
      baseUrl: cp.url,
      siteId: SITE,
      instanceId: "push-trigger",
      push: false,
      onError: (e) => errors.push(e),
    });
    try {
      const blocked = await firstMatches((ws) => ws.gate("free").reason === "tag_blocked", start, 10_000, "the rule's block");
      figures.push(`  rule created (it fires at once): instances blocking +${blocked.map((t) => t.toFixed(0)).join(", +")} ms`);
      for (const ws of instances) expect(ws.gate("pro")).toEqual({ allowed: true, reason: "allowed" });
      expect(instances.map((ws) => ws.status().lastSyncAt)).toEqual(syncs);
      const status = await cp.api<{ rules: Array<{ id: string; active: boolean }> }>(
        "GET",
        `/v1/sites/${SITE}/status`,
        tenant.managementToken,
      );
      expect(status.rules.find((r) => r.id === rule.id)?.active).toBe(true);
    } finally {
      await trigger.shutdown();
    }
    expect(errors).toEqual([]);
  }, 30_000);
});
