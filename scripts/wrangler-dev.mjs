// One `wrangler dev` process for tests and benchmarks: spawned detached (its
// own process group, so workerd goes with it), its output kept, ready once a
// URL answers, stopped by process group (SIGTERM, SIGKILL after 5 s). Used by
// the control-plane harness (local-control-plane.mjs) and the edge Worker's
// (e2e/support/edge-worker.ts).
import { spawn } from "node:child_process";
import { ROOT, WRANGLER_ENV, bin } from "./lib.mjs";

export class WranglerDev {
  /**
   * Spawns `wrangler dev <args>` and waits until `readyUrl` answers (any HTTP
   * answer when `anyStatus`, else a 2xx).
   * @param {{ args: string[], readyUrl: string, name?: string, timeoutMs?: number, echo?: boolean, anyStatus?: boolean }} o
   */
  static async start(o) {
    const child = spawn(bin("wrangler"), ["dev", ...o.args], {
      cwd: ROOT,
      env: { ...process.env, ...WRANGLER_ENV, CI: "true" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const dev = new WranglerDev(child);
    const keep = (d) => {
      dev.output = (dev.output + d).slice(-20_000);
      if (o.echo) process.stderr.write(d);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    const name = o.name ?? "wrangler dev";
    const timeoutMs = o.timeoutMs ?? 90_000;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}:\n${dev.output}`);
      try {
        const res = await fetch(o.readyUrl);
        await res.arrayBuffer();
        if (o.anyStatus || res.ok) return dev;
      } catch {
        // not yet
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    await dev.stop();
    throw new Error(`${name} did not answer on ${o.readyUrl} within ${timeoutMs} ms:\n${dev.output}`);
  }

  /** @param {import("node:child_process").ChildProcess} child */
  constructor(child) {
    this.child = child;
    this.output = "";
  }

  /** Stops the process group (workerd included) and waits for it to exit. */
  async stop() {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }, 5000);
    await exited;
    clearTimeout(timer);
  }
}
