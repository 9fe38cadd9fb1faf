// A real control plane for end-to-end tests and benchmarks: `wrangler dev` on a
// free 127.0.0.1 port with its own local state directory (D1 migrated first),
// fresh secrets, and a small management client. Stopping and starting again
// keeps the state (D1, KV, Durable Objects), as a restart of the real thing would.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { bin, run } from "./lib.mjs";
import { WranglerDev } from "./wrangler-dev.mjs";

/** A port nobody listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export class LocalControlPlane {
  /** @param {{ port: number, state: string, ownsState: boolean, quiet: boolean, vars?: Record<string, string> }} o */
  constructor(o) {
    this.port = o.port;
    /** Extra `--var NAME:value` bindings (e.g. a fast webhook retry base for tests), kept across restarts. */
    this.vars = { ...(o.vars ?? {}) };
    this.state = o.state;
    this.ownsState = o.ownsState;
    this.quiet = o.quiet;
    this.url = `http://127.0.0.1:${o.port}`;
    this.adminToken = `ws_admin_${randomBytes(16).toString("hex")}`;
    this.encryptionKey = randomBytes(32).toString("base64");
    /** @type {import("./wrangler-dev.mjs").WranglerDev | null} */
    this.dev = null;
    this.lastOutput = "";
  }

  /** Starts `wrangler dev` and waits until it answers `/healthz`. */
  async start(timeoutMs = 90_000) {
    if (this.dev) return this;
    const args = [
      "--ip",
      "127.0.0.1",
      "--port",
      String(this.port),
      "--persist-to",
      this.state,
      "--show-interactive-dev-session=false",
      "--log-level",
      "warn",
      "--var",
      `ADMIN_TOKEN:${this.adminToken}`,
      "--var",
      `ENCRYPTION_KEY:${this.encryptionKey}`,
      ...Object.entries(this.vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
    ];
    try {
      this.dev = await WranglerDev.start({ args, readyUrl: `${this.url}/healthz`, timeoutMs, echo: !this.quiet });
    } catch (error) {
      this.lastOutput = error instanceof Error ? error.message : String(error);
      throw error;
    }
    return this;
  }

  /** wrangler dev's recent output (of the last run once stopped). */
  get output() {
    return this.dev?.output ?? this.lastOutput;
  }

  /** The running wrangler process (the process-group leader), or null. */
  get child() {
    return this.dev?.child ?? null;
  }

  /** Stops the process group (workerd included) and waits for it to exit. State stays. */
  async stop() {
    const dev = this.dev;
    this.dev = null;
    if (!dev) return;
    this.lastOutput = dev.output;
    await dev.stop();
    // wait until the port is free again, so a restart can bind it
    for (let i = 0; i < 50; i++) {
      try {
        await fetch(`${this.url}/healthz`);
      } catch {
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stops and removes the state directory when this harness created it. */
  async dispose() {
    await this.stop();
    if (this.ownsState) rmSync(this.state, { recursive: true, force: true });
  }

  /** A JSON request to the management API; throws with the error body on a non-2xx answer. */
  async api(method, pathname, token, body) {
    const res = await fetch(`${this.url}${pathname}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    const json = text ? JSON.parse(text) : null;
    if (!res.ok) throw new Error(`${method} ${pathname}: ${res.status} ${text}`);
    return json;
  }

  /** A new organization and one key pair: { orgId, managementToken, publishKey, secretKey }. */
  async tenant(name = "E2E Co", plan) {
    const org = await this.api("POST", "/v1/organizations", this.adminToken, { name, ...(plan ? { plan } : {}) });
    const key = await this.api("POST", "/v1/api-keys", org.managementToken, { name: "e2e" });
    return {
      orgId: org.organization.id,
      managementToken: org.managementToken,
      publishKey: key.publishKey,
      secretKey: key.secretKey,
      org,
      key,
    };
  }
}

/**
 * Migrates a (new or given) local state directory and starts `wrangler dev` on it.
 * @param {{ state?: string, port?: number, quiet?: boolean, vars?: Record<string, string> }} [options]
 */
export async function startLocalControlPlane(options = {}) {
  const ownsState = options.state === undefined;
  const state = options.state ?? mkdtempSync(path.join(tmpdir(), "waitstate-e2e-"));
  const migrate = await run(bin("wrangler"), ["d1", "migrations", "apply", "DB", "--local", "--persist-to", state], {
    env: { CI: "true" },
    capture: true,
    quiet: true,
  });
  if (migrate.code !== 0) throw new Error(`migrations failed:\n${migrate.output}`);
  const cp = new LocalControlPlane({
    port: options.port ?? (await freePort()),
    state,
    ownsState,
    quiet: options.quiet ?? true,
    vars: options.vars,
  });
  return cp.start();
}
