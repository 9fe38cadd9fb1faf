import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

it("a process holding a synced client that was never shut down exits on its own (timers are unref'd)", async () => {
  const child = spawn(process.execPath, ["--import", "tsx", "sdk-node/test/fixtures/idle-client.ts"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const started = Date.now();
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve(null);
    }, 15_000);
    child.once("exit", (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  expect(out).toContain("synced=true");
  expect(code).toBe(0);
  expect(Date.now() - started).toBeLessThan(15_000);
}, 20_000);
