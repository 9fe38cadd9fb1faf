/**
 * The Rust agent (`waitstate-agent`) against the real control plane (wrangler
 * dev, local D1/KV/DO): latency reported through the agent feeds a p95 rule
 * that fires and /gate denies that tag; the kill switch reaches it and its
 * removal too; and the organization's usage ledger equals the /gate calls
 * made through the agent.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalControlPlane, type LocalControlPlane, type Tenant } from "../scripts/local-control-plane.mjs";
import { built, healthOnceSynced, killAgents, listening, spawnAgent, stopAgent, type AgentProcess } from "../rust/test/support/agent.js";
import { sleep, until } from "./support/wait.js";

const SITE = "agent-e2e";
let cp: LocalControlPlane;
let tenant: Tenant;
let agent: AgentProcess | null = null;
let url = "";
/** Every /gate call made through the agent: the ledger must hold exactly this many. */
let gateCalls = 0;

const api = <T = any>(method: string, path: string, body?: unknown) => cp.api<T>(method, path, tenant.managementToken, body);

async function gate(tag: string, extra: Record<string, unknown> = {}): Promise<{ allowed: boolean; reason: string }> {
  gateCalls++;
  const res = await fetch(`${url}/gate`, { method: "POST", body: JSON.stringify({ tag, ...extra }) });
  expect(res.status).toBe(200);
  return (await res.json()) as { allowed: boolean; reason: string };
}

beforeAll(async () => {
  if (built.binary === undefined) return;
  cp = await startLocalControlPlane();
  tenant = await cp.tenant("Agent E2E", "enterprise");
  agent = spawnAgent({
    WAITSTATE_PUBLISH_KEY: tenant.publishKey,
    WAITSTATE_SECRET_KEY: tenant.secretKey,
    WAITSTATE_BASE_URL: cp.url,
    WAITSTATE_SITE_ID: SITE,
    WAITSTATE_INSTANCE_ID: "agent-e2e-1",
    PORT: "0",
  });
  url = await listening(agent);
  expect(await healthOnceSynced(url, 20_000)).toMatchObject({ synced: true, instanceId: "agent-e2e-1" });
}, 180_000);

afterAll(async () => {
  killAgents();
  await cp?.dispose();
});

describe.skipIf(built.binary === undefined)("waitstate-agent against wrangler dev", () => {
  it("latency reported through the agent fires a p95 rule, and /gate denies that tag", async () => {
    expect(await gate("search")).toEqual({ allowed: true, reason: "allowed" });
    await api("POST", "/v1/reflex-rules", {
      tagName: "search",
      metric: "p95_latency",
      operator: "gt",
      threshold: 500,
      action: "block",
      priority: 1,
      cooldownSeconds: 0,
      siteId: SITE,
    });
    // Fast requests first: the rule holds only once the slow ones arrive.
    for (let i = 0; i < 20; i++) await gate("search", { latency_ms: 20 });
    await sleep(2500);
    expect(await gate("search")).toEqual({ allowed: true, reason: "allowed" });
    // Now slow: most of the window's requests take 900 ms, through both telemetry routes.
    for (let i = 0; i < 40; i++) {
      await gate("search", { latency_ms: 900 });
      const res = await fetch(`${url}/report-latency`, { method: "POST", body: JSON.stringify({ ms: 950, tag: "search" }) });
      expect(res.status).toBe(204);
    }
    const denied = await until(
      async () => {
        const answer = await gate("search");
        return answer.allowed ? null : answer;
      },
      20_000,
      "the p95 rule to block search",
      200,
    );
    expect(denied).toEqual({ allowed: false, reason: "tag_blocked" });
    expect(await gate("checkout")).toEqual({ allowed: true, reason: "allowed" });
    const status = await api<{ window: { p95: number }; rules: Array<{ active: boolean }> }>("GET", `/v1/sites/${SITE}/status`);
    expect(status.window.p95).toBeGreaterThan(500);
    expect(status.rules.some((r) => r.active)).toBe(true);
  }, 60_000);

  it("the kill switch reaches the agent, and turning it off restores traffic", async () => {
    await api("POST", `/v1/sites/${SITE}/kill`, { enabled: true });
    await until(async () => (await gate("checkout")).reason === "kill_signal", 20_000, "kill_signal through the agent", 200);
    expect(await gate("anything")).toEqual({ allowed: false, reason: "kill_signal" });
    await api("POST", `/v1/sites/${SITE}/kill`, { enabled: false });
    await until(async () => (await gate("checkout")).allowed, 20_000, "traffic restored", 200);
  }, 60_000);

  it("the usage ledger equals the /gate calls made through the agent", async () => {
    expect(await stopAgent(agent!)).toEqual({ code: 0, signal: null });
    // Only client errors would be on stderr; none is expected against a healthy control plane.
    expect(agent!.stderr()).toBe("");
    expect(gateCalls).toBeGreaterThan(60);
    // The ledger is written by the aggregator's rollup of complete minutes.
    let ledger = 0;
    await until(
      async () => {
        const usage = await api<{ usage: Array<{ calls: number }> }>("GET", "/v1/usage");
        ledger = usage.usage.reduce((n, m) => n + m.calls, 0);
        return ledger >= gateCalls;
      },
      150_000,
      `the usage ledger to reach ${gateCalls}`,
      2000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; it holds ${ledger}`);
    });
    expect(ledger).toBe(gateCalls);
  }, 180_000);
});
