/**
 * The example edge Worker (examples/edge-worker) under its own `wrangler dev`,
 * on a free 127.0.0.1 port with a throwaway state directory; stopped by process
 * group, as scripts/local-control-plane.mjs stops the control plane.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../../scripts/local-control-plane.mjs";
import { WranglerDev } from "../../scripts/wrangler-dev.mjs";

const CONFIG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../examples/edge-worker/wrangler.toml");

export class EdgeWorker {
  readonly url: string;
  private dev: WranglerDev | null = null;

  constructor(
    readonly port: number,
    private readonly state: string,
    private readonly config = CONFIG,
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  /** wrangler dev's recent output. */
  get output(): string {
    return this.dev?.output ?? "";
  }

  /** Starts `wrangler dev` for the example and waits until the Worker answers (any status: the probes are gate calls of `__default__`). */
  async start(vars: Record<string, string>, timeoutMs = 60_000, readyPath = "/__ready"): Promise<this> {
    const args = [
      "--config",
      this.config,
      "--ip",
      "127.0.0.1",
      "--port",
      String(this.port),
      "--inspector-port",
      String(await freePort()),
      "--persist-to",
      this.state,
      "--show-interactive-dev-session=false",
      "--log-level",
      "warn",
      ...Object.entries(vars).flatMap(([key, value]) => ["--var", `${key}:${value}`]),
    ];
    try {
      this.dev = await WranglerDev.start({
        args,
        readyUrl: `${this.url}${readyPath}`,
        name: "wrangler dev (edge worker)",
        timeoutMs,
        anyStatus: true,
      });
    } catch (error) {
      rmSync(this.state, { recursive: true, force: true });
      throw error;
    }
    return this;
  }

  /** Stops wrangler dev (its process group, workerd included) and removes the state directory. */
  async stop(): Promise<void> {
    await this.dev?.stop();
    this.dev = null;
    rmSync(this.state, { recursive: true, force: true });
  }

  async getJson<T = any>(pathname: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: T }> {
    const res = await fetch(`${this.url}${pathname}`, { headers });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : null) as T };
  }
}

/**
 * Starts the example Worker (or the Worker of another wrangler.toml, `config`) with these `--var`s on a
 * free port; ready once `readyPath` answers.
 */
export async function startEdgeWorker(
  vars: Record<string, string>,
  options: { timeoutMs?: number; config?: string; readyPath?: string } = {},
): Promise<EdgeWorker> {
  const worker = new EdgeWorker(await freePort(), mkdtempSync(path.join(tmpdir(), "waitstate-edge-")), options.config ?? CONFIG);
  return worker.start(vars, options.timeoutMs, options.readyPath);
}
