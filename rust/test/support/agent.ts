/**
 * The Rust agent, `waitstate-agent`, as a child process: built once per test
 * file (cargo makes later builds no-ops), spawned with exactly the
 * environment a test gives, its output collected.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { buildAgent } from "../../../scripts/build-agent.mjs";

/**
 * The binary (the `dev` profile: quick to rebuild after `cargo test`), or why
 * there is none (no Rust toolchain: the suites skip, as `npm test -- rust`
 * does). `WAITSTATE_AGENT_BIN` tests that binary instead (one built
 * elsewhere, e.g. the optimized one) without building.
 */
export const built: { binary: string; skipped?: undefined } | { binary?: undefined; skipped: string } = process.env.WAITSTATE_AGENT_BIN
  ? { binary: process.env.WAITSTATE_AGENT_BIN }
  : await buildAgent({ profile: "dev" });

export interface AgentProcess {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcessWithoutNullStreams[] = [];

/** Kills what a test left running (call from afterEach). */
export function killAgents(): void {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

/** Spawns the agent with exactly `env` (plus PATH), collecting its output. */
export function spawnAgent(env: Record<string, string>): AgentProcess {
  if (built.binary === undefined) throw new Error(`no agent binary: ${built.skipped}`);
  const child = spawn(built.binary, [], { env: { PATH: process.env.PATH ?? "", ...env } });
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

/** Resolves with the URL of the "listening on" line; rejects if the agent exits or stays silent. */
export async function listening(agent: AgentProcess, timeoutMs = 20_000): Promise<string> {
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

/** The agent's `/health` once it reports `synced` (polled: only the agent knows when it read the answer). */
export async function healthOnceSynced(url: string, timeoutMs: number): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const health = (await (await fetch(`${url}/health`)).json()) as Record<string, unknown>;
    if (health.synced === true || Date.now() > deadline) return health;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** SIGTERM, then the exit: the agent has sent its final pulse when it exits 0. */
export async function stopAgent(agent: AgentProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill("SIGTERM");
  return agent.exited;
}
