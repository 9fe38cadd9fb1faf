import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const KILL_AFTER_MS = 15_000;

/** Runs a fixture script in its own Node process; its exit code (null: killed after 15 s) and its output. */
async function runFixture(name: string, args: string[] = [], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ["--import", "tsx", `sdk-node/test/fixtures/${name}`, ...args], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve(null);
    }, KILL_AFTER_MS);
    child.once("exit", (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  return { code, out };
}

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

it("a process holding a synced client that was never shut down exits on its own (timers and the push socket are unref'd)", async () => {
  const { code, out } = await runFixture("idle-client.ts");
  expect(out).toContain("synced=true push=true");
  expect(code).toBe(0);
}, 20_000);

it("ready(timeoutMs) at the top level resolves false on timeout when nothing else keeps the process alive", async () => {
  const port = await closedPort();
  const { code, out } = await runFixture("ready-timeout.ts", [`http://127.0.0.1:${port}`], { WAITSTATE_BASE_URL: "" });
  expect(out).toContain("synced=false");
  expect(code, out).toBe(0);
  // The failures name where the SDK tried to connect.
  expect(out).toContain(`connection refused by 127.0.0.1:${port}`);
}, 20_000);
