/**
 * The `waitstate-agent` bin as a child process (through tsx, from the repo
 * root), against the stand-in control plane.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { startControlPlane, type FakeControlPlane } from "./support/control-plane.js";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BIN = "sdk-node/src/agent/bin.ts";

interface Agent {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcessWithoutNullStreams[] = [];
const controlPlanes: FakeControlPlane[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await Promise.all(controlPlanes.splice(0).map((cp) => cp.stop()));
});

/** Spawns the bin with exactly `env` (plus PATH), collecting its output. */
function spawnAgent(env: Record<string, string>): Agent {
  const child = spawn(process.execPath, ["--import", "tsx", BIN], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? "", ...env },
  });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Resolves with the URL of the "listening on" line; rejects if the child exits or stays silent. */
async function listening(agent: Agent, timeoutMs = 20_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const match = /listening on (http:\/\/\S+)/.exec(agent.stdout());
    if (match) return match[1]!;
    if (agent.child.exitCode !== null) throw new Error(`the agent exited ${agent.child.exitCode}: ${agent.stderr()}`);
    if (Date.now() > until)
      throw new Error(`no "listening" line within ${timeoutMs} ms; stdout ${agent.stdout()} stderr ${agent.stderr()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The agent's `/health` once it reports `synced` (polled, since only the agent knows when it read the answer). */
async function healthOnceSynced(url: string, timeoutMs: number): Promise<unknown> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const health = (await (await fetch(`${url}/health`)).json()) as { synced?: unknown };
    if (health.synced === true || Date.now() > deadline) return health;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function startCp(pulseInterval: number): Promise<FakeControlPlane> {
  const cp = await startControlPlane({ pulseInterval });
  controlPlanes.push(cp);
  return cp;
}

describe("waitstate-agent (the bin)", () => {
  it.each(["SIGTERM", "SIGINT"] as const)(
    "serves /gate and /health, and on %s sends a final pulse and exits 0",
    async (signal) => {
      // A minute between pulses: after the first sync, only the final pulse can carry the gate call.
      const cp = await startCp(60_000);
      const agent = spawnAgent({
        WAITSTATE_PUBLISH_KEY: cp.publishKey,
        WAITSTATE_SECRET_KEY: cp.secretKey,
        WAITSTATE_BASE_URL: cp.url,
        WAITSTATE_INSTANCE_ID: `agent-bin-${signal.toLowerCase()}`,
        PORT: "0",
      });
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
      expect(agent.stderr()).toBe("");
      await expect(fetch(`${url}/health`)).rejects.toThrow();
    },
    30_000,
  );

  it.each([
    ["WAITSTATE_SECRET_KEY", { WAITSTATE_PUBLISH_KEY: "pk_test" }, /^waitstate-agent: WAITSTATE_SECRET_KEY must be set/],
    ["WAITSTATE_PUBLISH_KEY", { WAITSTATE_SECRET_KEY: "sk_test" }, /^waitstate-agent: WAITSTATE_PUBLISH_KEY must be set/],
    [
      "PORT",
      { WAITSTATE_PUBLISH_KEY: "pk", WAITSTATE_SECRET_KEY: "sk", WAITSTATE_BASE_URL: "http://127.0.0.1:1", PORT: "nine" },
      /^waitstate-agent: PORT must be/,
    ],
    [
      "WAITSTATE_BASE_URL (no default host)",
      { WAITSTATE_PUBLISH_KEY: "pk", WAITSTATE_SECRET_KEY: "sk" },
      /^waitstate-agent: WAITSTATE_BASE_URL must be set/,
    ],
    [
      "WAITSTATE_BASE_URL",
      { WAITSTATE_PUBLISH_KEY: "pk", WAITSTATE_SECRET_KEY: "sk", WAITSTATE_BASE_URL: "localhost" },
      /^waitstate-agent: invalid configuration: .*baseUrl must be an http\(s\) URL/,
    ],
  ])(
    "exits 1 with a message naming %s when it is missing or bad",
    async (_name, env, message) => {
      const agent = spawnAgent({ ...env, PORT: (env as Record<string, string>).PORT ?? "0" });
      expect(await agent.exited).toEqual({ code: 1, signal: null });
      expect(agent.stderr()).toMatch(message);
      expect(agent.stderr().trim().split("\n")).toHaveLength(1);
      expect(agent.stdout()).not.toContain("listening");
    },
    30_000,
  );

  it("exits 1 when the port is taken", async () => {
    const cp = await startCp(100);
    const taken = new URL(cp.url).port;
    const agent = spawnAgent({
      WAITSTATE_PUBLISH_KEY: cp.publishKey,
      WAITSTATE_SECRET_KEY: cp.secretKey,
      WAITSTATE_BASE_URL: cp.url,
      PORT: taken,
    });
    expect(await agent.exited).toEqual({ code: 1, signal: null });
    expect(agent.stderr()).toMatch(new RegExp(`^waitstate-agent: cannot listen on 127\\.0\\.0\\.1:${taken}: .*EADDRINUSE`));
  }, 30_000);

  it("logs each client error to stderr on one line", async () => {
    const cp = await startCp(100);
    const agent = spawnAgent({
      WAITSTATE_PUBLISH_KEY: cp.publishKey,
      WAITSTATE_SECRET_KEY: "sk_wrong",
      WAITSTATE_BASE_URL: cp.url,
      PORT: "0",
    });
    const url = await listening(agent);
    const until = Date.now() + 10_000;
    while (!agent.stderr().includes("PULSE_FAILED") && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
    // Still serving, failing open.
    expect(await (await fetch(`${url}/gate`, { method: "POST" })).json()).toEqual({ allowed: true, reason: "allowed" });
    agent.child.kill("SIGTERM");
    expect((await agent.exited).code).toBe(0);
    const lines = agent.stderr().trim().split("\n");
    expect(
      lines.some((l) => /^waitstate-agent: PULSE_FAILED \(401\): pulse not accepted \(401 INVALID_SIGNATURE: bad signature\)/.test(l)),
    ).toBe(true);
    for (const line of lines) expect(line).toMatch(/^waitstate-agent: [A-Z_]+( \(\d+\))?: /);
  }, 30_000);
});
