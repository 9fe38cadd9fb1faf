/**
 * The `waitstate-agent` process itself (the Rust binary) against the stand-in
 * control plane: what it prints, its configuration from the environment,
 * its signals and exit codes.
 */
import { hostname } from "node:os";
import { afterEach, describe, expect, it } from "vitest";
import { startControlPlane, type FakeControlPlane } from "../../sdk-node/test/support/control-plane.js";
import { built, healthOnceSynced, killAgents, listening, spawnAgent } from "./support/agent.js";

const controlPlanes: FakeControlPlane[] = [];

afterEach(async () => {
  killAgents();
  await Promise.all(controlPlanes.splice(0).map((cp) => cp.stop()));
});

/** The keys and URL of `cp`, and a free port, plus `extra`. */
function envOf(cp: FakeControlPlane, extra: Record<string, string> = {}): Record<string, string> {
  return { WAITSTATE_PUBLISH_KEY: cp.publishKey, WAITSTATE_SECRET_KEY: cp.secretKey, WAITSTATE_BASE_URL: cp.url, PORT: "0", ...extra };
}

async function startCp(pulseInterval: number): Promise<FakeControlPlane> {
  const cp = await startControlPlane({ pulseInterval });
  controlPlanes.push(cp);
  return cp;
}

describe.skipIf(built.binary === undefined)("waitstate-agent (the Rust binary)", () => {
  it.each(["SIGTERM", "SIGINT"] as const)(
    "serves /gate and /health, and on %s sends a final pulse and exits 0",
    async (signal) => {
      // A minute between pulses: after the first sync, only the final pulse can carry the gate call.
      const cp = await startCp(60_000);
      const agent = spawnAgent(envOf(cp, { WAITSTATE_INSTANCE_ID: `agent-bin-${signal.toLowerCase()}` }));
      const url = await listening(agent);
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(agent.stdout().split("\n")[0]).toBe(
        `waitstate-agent listening on ${url} (instance agent-bin-${signal.toLowerCase()}, control plane ${cp.url})`,
      );
      await cp.waitFor(() => cp.pulses.length >= 1, 10_000, "the first pulse");
      // The fake server records the pulse before the agent has read its answer: wait for the agent's own state.
      expect(await healthOnceSynced(url, 10_000)).toEqual({
        status: "ok",
        instanceId: `agent-bin-${signal.toLowerCase()}`,
        synced: true,
        policyVersion: 1,
        safeMode: false,
      });
      const gate = await fetch(`${url}/gate`, { method: "POST", body: JSON.stringify({ tag: "bin", latency_ms: 8 }) });
      expect(gate.status).toBe(200);
      expect(await gate.json()).toEqual({ allowed: true, reason: "allowed" });

      const pulsesBefore = cp.pulses.length;
      agent.child.kill(signal);
      expect(await agent.exited).toEqual({ code: 0, signal: null });
      expect(cp.pulses.length).toBe(pulsesBefore + 1);
      const final = cp.pulses.at(-1)!.body;
      expect(final).toMatchObject({ instanceId: `agent-bin-${signal.toLowerCase()}`, usageDelta: 1 });
      expect(final.tagMetrics).toEqual([
        expect.objectContaining({ tag: "bin", count: 1, latencyHistogram: expect.objectContaining({ n: 1, s: 8 }) }),
      ]);
      expect(agent.stdout()).toContain(`waitstate-agent: ${signal}: closing, sending the final pulse`);
      expect(agent.stdout()).toContain("waitstate-agent: stopped");
      expect(agent.stderr()).toBe("");
      await expect(fetch(`${url}/health`)).rejects.toThrow();
    },
    30_000,
  );

  it("without WAITSTATE_INSTANCE_ID, the instance id is the hostname and the pid", async () => {
    const cp = await startCp(60_000);
    const agent = spawnAgent(envOf(cp));
    const url = await listening(agent);
    const expected = `${hostname()
      .replace(/[^A-Za-z0-9._:-]+/g, "-")
      .replace(/^[^A-Za-z0-9]+/, "")}-${agent.child.pid}`;
    expect(await (await fetch(`${url}/health`)).json()).toMatchObject({ instanceId: expected });
    await cp.waitFor(() => cp.pulses.length >= 1, 10_000, "the first pulse");
    expect(cp.pulses[0]!.body.instanceId).toBe(expected);
  }, 30_000);

  it("HOST and PORT choose where it listens", async () => {
    const cp = await startCp(60_000);
    const agent = spawnAgent(envOf(cp, { HOST: "localhost" }));
    const url = await listening(agent);
    expect(url).toMatch(/^http:\/\/(127\.0\.0\.1|\[::1\]):\d+$/);
    expect((await fetch(`${url}/health`)).status).toBe(200);
  }, 30_000);

  it.each([
    ["WAITSTATE_SECRET_KEY", { WAITSTATE_PUBLISH_KEY: "pk_test" }, /^waitstate-agent: WAITSTATE_SECRET_KEY must be set/],
    ["WAITSTATE_PUBLISH_KEY", { WAITSTATE_SECRET_KEY: "sk_test" }, /^waitstate-agent: WAITSTATE_PUBLISH_KEY must be set/],
    ["both keys", {}, /^waitstate-agent: WAITSTATE_PUBLISH_KEY and WAITSTATE_SECRET_KEY must be set/],
    [
      "PORT",
      { WAITSTATE_PUBLISH_KEY: "pk", WAITSTATE_SECRET_KEY: "sk", WAITSTATE_BASE_URL: "http://127.0.0.1:1", PORT: "nine" },
      /^waitstate-agent: PORT must be an integer from 0 to 65535, got "nine"$/,
    ],
    [
      "WAITSTATE_BASE_URL (no default host)",
      { WAITSTATE_PUBLISH_KEY: "pk", WAITSTATE_SECRET_KEY: "sk" },
      /^waitstate-agent: WAITSTATE_BASE_URL must be set/,
    ],
    [
      "WAITSTATE_BASE_URL",
      { WAITSTATE_PUBLISH_KEY: "pk", WAITSTATE_SECRET_KEY: "sk", WAITSTATE_BASE_URL: "localhost" },
      /^waitstate-agent: invalid configuration: .*base_url: must be an http\(s\) URL/,
    ],
    [
      "WAITSTATE_SAFE_MODE_STRATEGY",
      {
        WAITSTATE_PUBLISH_KEY: "pk",
        WAITSTATE_SECRET_KEY: "sk",
        WAITSTATE_BASE_URL: "http://127.0.0.1:1",
        WAITSTATE_SAFE_MODE_STRATEGY: "closed",
      },
      /^waitstate-agent: WAITSTATE_SAFE_MODE_STRATEGY must be one of open, fixed_rps, last_policy, got "closed"$/,
    ],
    [
      "WAITSTATE_SAFE_MODE_MAX_RPS",
      {
        WAITSTATE_PUBLISH_KEY: "pk",
        WAITSTATE_SECRET_KEY: "sk",
        WAITSTATE_BASE_URL: "http://127.0.0.1:1",
        WAITSTATE_SAFE_MODE_MAX_RPS: "-1",
      },
      /^waitstate-agent: WAITSTATE_SAFE_MODE_MAX_RPS must be a whole number >= 0, got "-1"$/,
    ],
  ])(
    "exits 1 with a message naming %s when it is missing or bad",
    async (_name, env, message) => {
      const agent = spawnAgent({ ...env, PORT: (env as Record<string, string>).PORT ?? "0" });
      expect(await agent.exited).toEqual({ code: 1, signal: null });
      expect(agent.stderr().trim()).toMatch(message);
      expect(agent.stderr().trim().split("\n")).toHaveLength(1);
      expect(agent.stdout()).not.toContain("listening");
    },
    30_000,
  );

  it("exits 1 when the port is taken", async () => {
    const cp = await startCp(100);
    const taken = new URL(cp.url).port;
    const agent = spawnAgent(envOf(cp, { PORT: taken }));
    expect(await agent.exited).toEqual({ code: 1, signal: null });
    expect(agent.stderr()).toMatch(new RegExp(`^waitstate-agent: cannot listen on 127\\.0\\.0\\.1:${taken}: .*EADDRINUSE`));
  }, 30_000);

  it("logs each client error to stderr on one line, and keeps serving (failing open)", async () => {
    const cp = await startCp(100);
    const agent = spawnAgent(envOf(cp, { WAITSTATE_SECRET_KEY: "sk_wrong" }));
    const url = await listening(agent);
    const until = Date.now() + 10_000;
    while (!/PULSE_FAILED|AUTH_FAILED/.test(agent.stderr()) && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
    expect(await (await fetch(`${url}/gate`, { method: "POST" })).json()).toEqual({ allowed: true, reason: "allowed" });
    agent.child.kill("SIGTERM");
    expect((await agent.exited).code).toBe(0);
    const lines = agent.stderr().trim().split("\n");
    expect(lines.some((l) => /^waitstate-agent: (PULSE_FAILED|AUTH_FAILED) \(401\): /.test(l))).toBe(true);
    for (const line of lines) expect(line).toMatch(/^waitstate-agent: [A-Z_]+( \(\d+\))?: /);
  }, 30_000);

  it("a second signal while the final pulse is pending exits 1 at once", async () => {
    const cp = await startCp(60_000);
    const agent = spawnAgent(envOf(cp));
    const url = await listening(agent);
    await cp.waitFor(() => cp.pulses.length >= 1, 10_000, "the first pulse");
    await fetch(`${url}/gate`, { method: "POST" });
    cp.fault = "hang"; // the final pulse is never answered
    agent.child.kill("SIGTERM");
    const until = Date.now() + 10_000;
    while (!agent.stdout().includes("closing") && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
    agent.child.kill("SIGTERM");
    expect(await agent.exited).toEqual({ code: 1, signal: null });
    expect(agent.stderr()).toMatch(/^waitstate-agent: SIGTERM again: exiting without waiting for the final pulse$/m);
  }, 30_000);
});
