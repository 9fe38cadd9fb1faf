/**
 * The Rust crate `waitstate` against the real control plane (wrangler dev):
 * Rust processes (rust/waitstate/examples/e2e_driver.rs, built here with the
 * workspace's cargo) each run one `WaitState`, driven over stdin/stdout. A
 * reflex rule on p95 latency reported from Rust fires and the Rust gate
 * denies; the kill switch reaches a Rust instance by push on a site pulsing
 * every 30 s (before any pulse or read could bring it) and by pulses with push
 * off; an outage follows each safe-mode strategy once the lease has run out,
 * and the instances resync when the control plane is back; the organization's
 * usage ledger equals every gate() call the Rust instances made.
 *
 * Skipped, saying why, where there is no Rust toolchain.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RUST_DIR, RUST_INSTALL_COMMAND, cargo, findToolchain } from "../scripts/build-wasm.mjs";
import { type LocalControlPlane, type Tenant, startLocalControlPlane } from "../scripts/local-control-plane.mjs";
import { sleep, until } from "./support/wait.js";

const toolchain = findToolchain({ wasm: false });
if (toolchain === null) console.warn(`e2e/rust-crate: skipped: no Rust toolchain (cargo, rustc) here; install: ${RUST_INSTALL_COMMAND}`);

const DRIVER = path.join(RUST_DIR, "target", "debug", "examples", "e2e_driver");
/** 1 s pulses, a 5 s lease, a 2 s window: rules, the kill switch by pulse, the outage. */
const FAST = { siteId: "rust-fast", pulseIntervalMs: 1000, leaseDurationSeconds: 5, windowSeconds: 2 };
/** 30 s pulses: only push can bring a change within seconds. */
const SLOW = { siteId: "rust-slow", pulseIntervalMs: 30_000, leaseDurationSeconds: 120, windowSeconds: 60 };

interface Status {
  synced: boolean;
  authenticated: boolean;
  lastSyncAt: number | null;
  policyVersion: number | null;
  safeMode: boolean;
  pulseIntervalMs: number;
}
interface Answer {
  gateCalls: number;
  status: Status;
  allowed?: number;
  denied?: number;
  reasons?: Record<string, number>;
  seen?: boolean;
  elapsedMs?: number;
}
interface ClientError {
  code: string;
  status: number;
  message: string;
}

/** One Rust process with its `WaitState`. */
class RustInstance {
  readonly errors: ClientError[] = [];
  gateCalls = 0;
  private readonly answers: Array<{ resolve: (line: string) => void; reject: (e: Error) => void }> = [];
  private readonly lines: string[] = [];

  private constructor(
    readonly name: string,
    private readonly child: ChildProcessWithoutNullStreams,
  ) {
    createInterface({ input: child.stdout }).on("line", (line) => {
      const waiting = this.answers.shift();
      if (waiting) waiting.resolve(line);
      else this.lines.push(line);
    });
    child.once("exit", (code) => {
      for (const waiting of this.answers.splice(0)) waiting.reject(new Error(`${name} exited with ${code}`));
    });
    createInterface({ input: child.stderr }).on("line", (line) => {
      try {
        this.errors.push((JSON.parse(line) as { error: ClientError }).error);
      } catch {
        process.stderr.write(`[${name}] ${line}\n`);
      }
    });
  }

  static async start(name: string, env: Record<string, string>): Promise<RustInstance> {
    const child = spawn(DRIVER, [], { env: { ...process.env, WS_INSTANCE_ID: name, ...env }, stdio: ["pipe", "pipe", "pipe"] });
    const instance = new RustInstance(name, child);
    const ready = JSON.parse(await instance.next()) as { ready?: boolean; fatal?: string };
    if (!ready.ready) throw new Error(`${name} did not start: ${JSON.stringify(ready)}`);
    return instance;
  }

  private next(timeoutMs = 30_000): Promise<string> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no answer within ${timeoutMs} ms`)), timeoutMs);
      this.answers.push({
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  async send(command: Record<string, unknown>): Promise<Answer> {
    this.child.stdin.write(`${JSON.stringify(command)}\n`);
    const answer = JSON.parse(await this.next()) as Answer & { fatal?: string };
    if (answer.fatal) throw new Error(`${this.name}: ${answer.fatal}`);
    this.gateCalls = answer.gateCalls;
    return answer;
  }

  gate(tag: string, n = 1, weight = 1) {
    return this.send({ cmd: "gate", tag, n, weight });
  }
  status() {
    return this.send({ cmd: "status" }).then((a) => a.status);
  }
  /** Gate calls every millisecond, in the Rust process, until one answers `reason`. */
  until(tag: string, reason: string, timeoutMs: number) {
    return this.send({ cmd: "until", tag, reason, timeoutMs });
  }

  /** The final pulse, then exit; the gate calls it made. */
  async shutdown(): Promise<number> {
    if (this.child.exitCode !== null) return this.gateCalls;
    const exited = new Promise((r) => this.child.once("exit", r));
    const answer = await this.send({ cmd: "shutdown" });
    await exited;
    return answer.gateCalls;
  }

  kill() {
    if (this.child.exitCode === null) this.child.kill("SIGKILL");
  }
}

let cp: LocalControlPlane;
let tenant: Tenant;
const instances: RustInstance[] = [];
let gateCalls = 0;

async function startInstance(name: string, site: string, env: Record<string, string> = {}) {
  const instance = await RustInstance.start(name, {
    WS_BASE_URL: cp.url,
    WS_PUBLISH_KEY: tenant.publishKey,
    WS_SECRET_KEY: tenant.secretKey,
    WS_SITE_ID: site,
    ...env,
  });
  instances.push(instance);
  await until(async () => (await instance.status()).synced, 20_000, `${name}'s first sync`);
  return instance;
}

/** Errors an instance may report here: the outage's, and nothing else. */
function unexpected(errors: ClientError[]) {
  const outage = ["PULSE_FAILED", "POLICY_FETCH_FAILED", "SAFE_MODE", "AUTH_FAILED", "PUSH_FAILED"];
  return errors.filter((e) => !outage.includes(e.code)).map((e) => `${e.code}: ${e.message}`);
}

describe.skipIf(toolchain === null)("the Rust crate against wrangler dev", () => {
  beforeAll(async () => {
    // A cold build of the crate and its dependencies takes minutes on a busy machine.
    const built = await cargo(["build", "-p", "waitstate", "--example", "e2e_driver"], { tc: toolchain!, capture: true });
    if (built.code !== 0) throw new Error(`cargo build of the e2e driver failed:\n${built.output.slice(-4000)}`);
    cp = await startLocalControlPlane();
    tenant = await cp.tenant("Rust E2E", "enterprise");
    const api = (method: string, pathname: string, body?: unknown) => cp.api(method, pathname, tenant.managementToken, body);
    await api("POST", "/v1/sites", FAST);
    await api("POST", "/v1/sites", SLOW);
  }, 1_800_000);

  afterAll(async () => {
    for (const i of instances) i.kill();
    await cp?.dispose();
  });

  const api = <T = any>(method: string, pathname: string, body?: unknown) => cp.api<T>(method, pathname, tenant.managementToken, body);

  it("a rule on p95 latency reported from Rust fires, and the Rust gate denies the tag", async () => {
    await api("POST", "/v1/reflex-rules", {
      tagName: "free",
      metric: "p95_latency",
      operator: "gt",
      threshold: 500,
      action: "block",
      priority: 1,
      // stays blocked for the rest of the file once it fired
      cooldownSeconds: 600,
      siteId: FAST.siteId,
    });
    const rust = await startInstance("rust-latency", FAST.siteId, { WS_SAFE_MODE_STRATEGY: "last_policy" });
    expect((await rust.gate("free", 10)).reasons).toEqual({ allowed: 10 });
    expect((await rust.status()).pulseIntervalMs).toBe(FAST.pulseIntervalMs);

    // slow answers, as a Rust service would report them
    await rust.send({ cmd: "latency", tag: "free", ms: 900, n: 200 });
    const blocked = await rust.until("free", "tag_blocked", 20_000);
    expect(blocked.seen).toBe(true);
    const status = await api<{ policy: { tagMaxWeights: Record<string, number> } }>("GET", `/v1/sites/${FAST.siteId}/status`);
    expect(status.policy.tagMaxWeights).toMatchObject({ free: 0 });
    expect((await rust.gate("free", 5)).reasons).toEqual({ tag_blocked: 5 });
    expect((await rust.gate("pro", 5)).reasons).toEqual({ allowed: 5 });
    expect(unexpected(rust.errors)).toEqual([]);
  }, 60_000);

  it("the kill switch reaches Rust instances by push, on a site pulsing every 30 s, before any pulse or read", async () => {
    // Reads at most once a minute: only a pulse (every ~30 s) or the push can bring the change.
    const rust = await Promise.all(
      ["rust-push-1", "rust-push-2"].map((name) => startInstance(name, SLOW.siteId, { WS_SYNC_INTERVAL_SECS: "3600" })),
    );
    for (const r of rust) expect((await r.status()).pulseIntervalMs).toBe(SLOW.pulseIntervalMs);
    // the socket opens right after the token exchange; give it a moment
    await sleep(2000);
    const before = await Promise.all(rust.map((r) => r.status()));
    expect((await rust[0]!.gate("anything", 3)).reasons).toEqual({ allowed: 3 });

    const on = await api<{ policy: { version: number; killSignal: boolean } }>("POST", `/v1/sites/${SLOW.siteId}/kill`, { enabled: true });
    expect(on.policy.killSignal).toBe(true);
    const seen = await Promise.all(rust.map((r) => r.until("anything", "kill_signal", 10_000)));
    const after = await Promise.all(rust.map((r) => r.status()));
    console.log(`kill switch by push, 30 s pulses: ${seen.map((s) => `${s.elapsedMs!.toFixed(0)} ms`).join(", ")} after the API answered`);
    for (const [i, s] of seen.entries()) {
      expect(s.seen, `instance ${i + 1} denies with kill_signal`).toBe(true);
      // no pulse answer and no read synced it: the push did, and it did not restart the lease
      expect(after[i]!.lastSyncAt).toBe(before[i]!.lastSyncAt);
      expect(after[i]!.policyVersion).toBeGreaterThanOrEqual(on.policy.version);
    }

    const off = await api<{ policy: { version: number } }>("POST", `/v1/sites/${SLOW.siteId}/kill`, { enabled: false });
    for (const r of rust) expect((await r.until("anything", "allowed", 10_000)).seen).toBe(true);
    for (const r of rust) expect((await r.status()).policyVersion).toBeGreaterThanOrEqual(off.policy.version);
    for (const r of rust) expect(unexpected(r.errors)).toEqual([]);
  }, 90_000);

  it("with push off, the kill switch reaches a Rust instance by its pulses", async () => {
    const rust = await startInstance("rust-no-push", FAST.siteId, { WS_PUSH: "0" });
    const before = await rust.status();
    const on = await api<{ policy: { version: number } }>("POST", `/v1/sites/${FAST.siteId}/kill`, { enabled: true });
    expect((await rust.until("pro", "kill_signal", 15_000)).seen).toBe(true);
    const after = await rust.status();
    // a sync brought it
    expect(after.lastSyncAt!).toBeGreaterThan(before.lastSyncAt!);
    expect(after.policyVersion).toBeGreaterThanOrEqual(on.policy.version);
    await api("POST", `/v1/sites/${FAST.siteId}/kill`, { enabled: false });
    expect((await rust.until("pro", "allowed", 15_000)).seen).toBe(true);
    expect(rust.errors.filter((e) => e.code === "PUSH_FAILED")).toEqual([]);
    expect(unexpected(rust.errors)).toEqual([]);
  }, 60_000);

  it("an outage: after the lease each instance follows its safe-mode strategy; they resync when the control plane is back", async () => {
    const open = await startInstance("rust-open", FAST.siteId, { WS_SAFE_MODE_STRATEGY: "open" });
    const fixed = await startInstance("rust-fixed", FAST.siteId, { WS_SAFE_MODE_STRATEGY: "fixed_rps", WS_SAFE_MODE_MAX_RPS: "5" });
    const last = instances.find((i) => i.name === "rust-latency")!;
    const fleet = [open, fixed, last];

    await cp.stop();
    try {
      const synced = await Promise.all(fleet.map((r) => r.status()));
      const leaseEnds = Math.max(...synced.map((s) => s.lastSyncAt!)) + FAST.leaseDurationSeconds * 1000;
      await sleep(Math.max(0, leaseEnds + 500 - Date.now()));
      for (const r of fleet) expect((await r.status()).safeMode, r.name).toBe(true);

      // open: everything allowed
      expect((await open.gate("free", 50)).reasons).toEqual({ lease_expired: 50 });
      expect((await open.gate("free", 50)).allowed).toBe(50);
      // fixed_rps: at most the bucket's 5 per second
      const burst = await fixed.gate("pro", 100);
      expect(burst.reasons).toEqual({ lease_expired: 100 });
      expect(burst.allowed).toBeGreaterThan(0);
      expect(burst.allowed).toBeLessThanOrEqual(6);
      // last_policy: the stale policy's decisions (free blocked by the rule, pro allowed)
      const free = await last.gate("free", 20);
      const pro = await last.gate("pro", 20);
      expect([free.allowed, free.reasons]).toEqual([0, { lease_expired: 20 }]);
      expect([pro.allowed, pro.reasons]).toEqual([20, { lease_expired: 20 }]);
      for (const r of fleet)
        expect(
          r.errors.some((e) => e.code === "SAFE_MODE"),
          r.name,
        ).toBe(true);
    } finally {
      await cp.start();
    }
    const restartedAt = Date.now();
    await until(
      async () => {
        const statuses = await Promise.all(fleet.map((r) => r.status()));
        return statuses.every((s) => !s.safeMode && s.lastSyncAt! >= restartedAt);
      },
      30_000,
      "every instance to resync after the restart",
    );
    expect((await open.gate("pro", 5)).reasons).toEqual({ allowed: 5 });
    for (const r of fleet) expect(unexpected(r.errors)).toEqual([]);
  }, 120_000);

  it("the organization's usage ledger equals the gate() calls of every Rust instance, outage included", async () => {
    for (const r of instances) gateCalls += await r.shutdown();
    expect(gateCalls).toBeGreaterThan(500);
    let ledger = 0;
    // the ledger is written by the aggregator's rollup of complete minutes
    await until(
      async () => {
        const usage = await api<{ usage: Array<{ calls: number }> }>("GET", "/v1/usage");
        ledger = usage.usage.reduce((n, m) => n + m.calls, 0);
        return ledger >= gateCalls;
      },
      150_000,
      `the usage ledger to reach ${gateCalls}`,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; it holds ${ledger}`);
    });
    expect(ledger).toBe(gateCalls);
    for (const r of instances) expect(r.errors.filter((e) => e.code === "SHUTDOWN_FLUSH_FAILED")).toEqual([]);
  }, 180_000);
});
