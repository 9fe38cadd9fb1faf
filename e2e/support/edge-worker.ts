/**
 * The example edge Worker (examples/edge-worker) under its own `wrangler dev`,
 * on a free 127.0.0.1 port with a throwaway state directory; stopped by process
 * group, as scripts/local-control-plane.mjs stops the control plane.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../../scripts/local-control-plane.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const WRANGLER = path.join(ROOT, "node_modules", ".bin", "wrangler");
const CONFIG = path.join(ROOT, "examples", "edge-worker", "wrangler.toml");
const WRANGLER_ENV = { WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_HIDE_BANNER: "true" };

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls an async `check` until it returns a value other than undefined/false; fails with `what` after `timeoutMs`. */
export async function until<T>(check: () => Promise<T | undefined | false>, timeoutMs: number, what: string, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`);
    await sleep(everyMs);
  }
}

export class EdgeWorker {
  readonly url: string;
  output = "";
  private child: ChildProcess | null = null;

  constructor(
    readonly port: number,
    private readonly state: string,
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  /** Spawns `wrangler dev` (detached: its own process group) and waits until the Worker answers. */
  async start(vars: Record<string, string>, timeoutMs = 60_000): Promise<this> {
    const args = [
      "dev",
      "--config", CONFIG,
      "--ip", "127.0.0.1",
      "--port", String(this.port),
      "--inspector-port", String(await freePort()),
      "--persist-to", this.state,
      "--show-interactive-dev-session=false",
      "--log-level", "warn",
      ...Object.entries(vars).flatMap(([key, value]) => ["--var", `${key}:${value}`]),
    ];
    const child = spawn(WRANGLER, args, {
      cwd: ROOT,
      env: { ...process.env, ...WRANGLER_ENV, CI: "true" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    this.child = child;
    const keep = (d: Buffer) => {
      this.output = (this.output + d.toString()).slice(-20_000);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`wrangler dev (edge worker) exited with ${child.exitCode}:\n${this.output}`);
      try {
        // The status route is no gate call; any answer means the Worker is up.
        const res = await fetch(`${this.url}/__waitstate/status`);
        await res.text();
        return this;
      } catch {
        // not yet
      }
      await sleep(200);
    }
    await this.stop();
    throw new Error(`the edge worker did not answer on ${this.url} within ${timeoutMs} ms:\n${this.output}`);
  }

  /** SIGTERM to the process group (workerd included), SIGKILL after 5 s; removes the state directory. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (child !== null && child.exitCode === null && child.pid !== undefined) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      let signalled = true;
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        signalled = false;
      }
      if (signalled) {
        const pid = child.pid;
        const timer = setTimeout(() => {
          try {
            process.kill(-pid, "SIGKILL");
          } catch {
            // already gone
          }
        }, 5000);
        await exited;
        clearTimeout(timer);
      }
    }
    rmSync(this.state, { recursive: true, force: true });
  }

  async getJson<T = any>(pathname: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: T }> {
    const res = await fetch(`${this.url}${pathname}`, { headers });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : null) as T };
  }
}

/** Starts the example Worker with these `--var`s on a free port. */
export async function startEdgeWorker(vars: Record<string, string>, timeoutMs?: number): Promise<EdgeWorker> {
  const worker = new EdgeWorker(await freePort(), mkdtempSync(path.join(tmpdir(), "waitstate-edge-")));
  return worker.start(vars, timeoutMs);
}
