/**
 * Fault injection for the edge client, as sdk-node/test/faults.test.ts does
 * for the Node SDK: three clients (one per safe-mode strategy) take a steady
 * stream of "requests" — gate() calls, then sync() as `ctx.waitUntil` would
 * run it — while the control plane misbehaves in every way it can: 500s,
 * garbage, a policy that fails the schema, hanging, slow answers, accepting a
 * pulse and dropping the connection, refusing connections, and going away
 * for longer than the lease. Then it comes back.
 *
 * Every gate() result is checked against the model: the pure gate on the last
 * good policy while the lease holds, the safe-mode strategy once it has
 * expired. No sync() ever rejects. At the end the usage the control plane
 * counted equals the calls each client made: nothing lost, nothing counted twice.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { WaitState, gate, type GateResult, type SafeModeStrategy, type WaitStateError } from "@waitstate/edge";
import { startControlPlane, type Fault, type FakeControlPlane } from "../../sdk-node/test/support/control-plane.js";

const LEASE_S = 2;
const STRATEGIES: SafeModeStrategy[] = ["open", "fixed_rps", "last_policy"];
const CALLS: Array<[string | undefined, number]> = [
  ["free", 1],
  ["pro", 3],
  ["pro", 8],
  ["enterprise", 20],
  [undefined, 1],
];

interface Tracked {
  ws: WaitState;
  errors: WaitStateError[];
  strategy: SafeModeStrategy;
  calls: number;
  mismatches: string[];
  leaseExpired: number;
  syncs: Promise<void>[];
  rejected: unknown[];
}

let cp: FakeControlPlane;
let tracked: Tracked[] = [];
let policy: FakeControlPlane["policy"];
let driver: ReturnType<typeof setInterval> | null = null;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const fatal = vi.spyOn(console, "error").mockImplementation(() => {});
const warn = vi.spyOn(console, "warn").mockImplementation(() => {});

async function eventually(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** What gate() must answer at `now` for this client (null: fixed_rps safe mode, decided by its bucket). */
function expected(t: Tracked, now: number, tag: string | undefined, weight: number): GateResult | "lease_expired" {
  const { lastSyncAt } = t.ws.status();
  if (lastSyncAt === null) return { allowed: true, reason: "allowed" };
  const onPolicy = gate(policy, tag, weight);
  if (now <= lastSyncAt + LEASE_S * 1000) return onPolicy;
  if (t.strategy === "open") return { allowed: true, reason: "lease_expired" };
  if (t.strategy === "last_policy") return { allowed: onPolicy.allowed, reason: "lease_expired" };
  return "lease_expired";
}

/** A call made by a test itself: counted like the driver's. */
function gateOnce(t: Tracked, tag: string, weight: number): GateResult {
  t.calls++;
  return t.ws.gate(tag, weight);
}

/**
 * One request per client: the calls, then the sync a Worker hands to
 * waitUntil. The client reads the clock once per task (as workerd does), so
 * the calls are judged at the task's start, and only when the clock did not
 * move during the task (else one may straddle the lease's end).
 */
function drive(): void {
  const now = Date.now();
  const judged: Array<[Tracked, string | undefined, number, GateResult]> = [];
  for (const t of tracked) {
    for (const [tag, weight] of CALLS) {
      const got = t.ws.gate(tag, weight);
      t.calls++;
      judged.push([t, tag, weight, got]);
    }
  }
  if (Date.now() === now) {
    for (const [t, tag, weight, got] of judged) {
      const want = expected(t, now, tag, weight);
      if (got.reason === "lease_expired") t.leaseExpired++;
      const wrong = want === "lease_expired" ? got.reason !== "lease_expired" : got.allowed !== want.allowed || got.reason !== want.reason;
      if (wrong && t.mismatches.length < 5)
        t.mismatches.push(`${t.strategy} ${tag}/${weight}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    }
  }
  for (const t of tracked) {
    const sync = t.ws.sync();
    if (t.syncs.at(-1) !== sync) t.syncs.push(sync.catch((e: unknown) => void t.rejected.push(e)));
  }
}

/** One fault for `ms`, then normal service until every client has synced again. */
async function phase(fault: Fault, ms: number, setup?: () => void | Promise<void>): Promise<void> {
  cp.fault = fault;
  await setup?.();
  await sleep(ms);
  const end = Date.now();
  cp.fault = "none";
  cp.delayMs = 0;
  if (!cp.listening) await cp.start();
  await eventually(() => tracked.every((t) => (t.ws.status().lastSyncAt ?? 0) > end), 4000, `resync after ${fault}`);
}

beforeAll(async () => {
  cp = await startControlPlane({ pulseInterval: 100, leaseDurationSeconds: LEASE_S });
  policy = cp.setPolicy({ tagMaxWeights: { free: 0, pro: 5 }, globalMaxWeight: 10 });
  tracked = STRATEGIES.map((strategy) => {
    const errors: WaitStateError[] = [];
    const ws = new WaitState({
      publishKey: cp.publishKey,
      secretKey: cp.secretKey,
      baseUrl: cp.url,
      instanceId: `edge-${strategy}`,
      safeModeStrategy: strategy,
      safeModeMaxRps: 40,
      pulseInterval: 100,
      requestTimeoutMs: 300,
      onError: (e) => errors.push(e),
    });
    return { ws, errors, strategy, calls: 0, mismatches: [], leaseExpired: 0, syncs: [], rejected: [] };
  });
  driver = setInterval(drive, 2);
}, 20_000);

afterAll(async () => {
  if (driver) clearInterval(driver);
  fatal.mockRestore();
  warn.mockRestore();
  await cp.stop();
});

describe("the control plane misbehaves; the edge client's gate() keeps answering right", () => {
  it("bootstrap: allowed before the first sync, the policy once synced", async () => {
    await eventually(() => tracked.every((t) => t.ws.status().synced), 3000, "first sync");
    for (const t of tracked) {
      expect(gateOnce(t, "free", 1)).toEqual({ allowed: false, reason: "tag_blocked" });
      expect(t.ws.status().policyVersion).toBe(policy.version);
    }
  });

  it("short faults (each shorter than the lease): the last policy holds, every call as the model says", async () => {
    await phase("error500", 400);
    await phase("garbage", 400);
    await phase("bad_policy", 400);
    await phase("hang", 700);
    await phase("none", 300, () => {
      cp.delayMs = 150; // slow but within requestTimeoutMs
    });
    await phase("accept_then_drop", 400);
    await phase("none", 400, () => cp.stop()); // connections refused
    for (const t of tracked) {
      expect(t.mismatches).toEqual([]);
      expect(t.leaseExpired).toBe(0);
      const codes = new Set(t.errors.map((e) => e.code));
      expect(codes).toContain("PULSE_FAILED");
      expect(codes).toContain("INVALID_POLICY");
      expect(codes).not.toContain("SAFE_MODE");
      expect(gateOnce(t, "free", 1).reason).toBe("tag_blocked"); // the schema-failing policy never replaced the good one
    }
  }, 30_000);

  it("an outage longer than the lease: safe mode by strategy, [WAITSTATE-FATAL] once each; the next sync ends it", async () => {
    fatal.mockClear();
    await phase("none", LEASE_S * 1000 + 1200, () => cp.stop());
    for (const t of tracked) {
      expect(t.mismatches).toEqual([]);
      expect(t.leaseExpired).toBeGreaterThan(0);
      expect(t.errors.filter((e) => e.code === "SAFE_MODE")).toHaveLength(1);
      expect(t.ws.status().safeMode).toBe(false);
      expect(gateOnce(t, "free", 1)).toEqual({ allowed: false, reason: "tag_blocked" });
    }
    expect(fatal.mock.calls.filter(([line]) => String(line).startsWith("[WAITSTATE-FATAL]"))).toHaveLength(STRATEGIES.length);
  }, 30_000);

  it("comes back: no sync rejected, and the usage counted equals the calls made", async () => {
    if (driver) clearInterval(driver);
    driver = null;
    for (const t of tracked) await Promise.all(t.syncs);
    // Two more rounds: everything counted since is delivered.
    await sleep(150);
    for (const t of tracked) await t.ws.sync();
    await sleep(150);
    for (const t of tracked) await t.ws.sync();
    for (const t of tracked) {
      expect(t.rejected).toEqual([]);
      expect(t.ws.status().pendingPulses).toBe(0);
      expect(cp.countedUsage(`edge-${t.strategy}`)).toBe(t.calls);
    }
  }, 20_000);
});
