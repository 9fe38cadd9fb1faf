/**
 * Fault injection: three clients (one per safe-mode strategy) gate a steady
 * stream of calls while the control plane misbehaves in every way it can —
 * 500s, garbage, a policy that fails the schema, hanging, slow answers,
 * accepting a pulse and dropping the connection, refusing connections, and
 * going away for longer than the lease — then comes back.
 *
 * Every single gate() result is checked against the model: the pure gate on
 * the last good policy while the lease holds, the safe-mode strategy once it
 * has expired. At the end, the usage the control plane counted equals the
 * calls each client made: nothing lost, nothing counted twice.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { gate, type GateResult, type SafeModeStrategy } from "../src/index.js";
import { clockRunning, coarseClock } from "../src/clock.js";
import { startControlPlane, type Fault, type FakeControlPlane } from "./support/control-plane.js";
import { clientOf, eventually, sleep, type TestClient } from "./support/client.js";

const LEASE_S = 2;
const STRATEGIES: SafeModeStrategy[] = ["open", "fixed_rps", "last_policy"];
const SAFE_RPS = 40;
const CALLS: Array<[string | undefined, number]> = [
  ["free", 1],
  ["pro", 3],
  ["pro", 8],
  ["enterprise", 20],
  [undefined, 1],
];

interface Tracked extends TestClient {
  strategy: SafeModeStrategy;
  calls: number;
  mismatches: string[];
  leaseExpiredAllowed: number;
  leaseExpiredDenied: number;
  /** [coarse time, allowed] of fixed_rps safe-mode calls, to check the rate. */
  safeModeAllowedAt: number[];
}

let cp: FakeControlPlane;
let tracked: Tracked[] = [];
let policy: FakeControlPlane["policy"];
let driver: ReturnType<typeof setInterval> | null = null;
let uniqueTag = 0;
let spreadTags = false;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
let timeoutsBefore = 0;
const fatal = vi.spyOn(console, "error").mockImplementation(() => {});
const warn = vi.spyOn(console, "warn").mockImplementation(() => {});

function countTimeouts(): number {
  return process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
}

/** What gate() must answer right now for this client. */
function expected(t: Tracked, tag: string | undefined, weight: number): { result?: GateResult; reason?: string } {
  const st = t.ws.status();
  if (st.lastSyncAt === null) return { result: { allowed: true, reason: "allowed" } };
  const onPolicy = gate(policy, tag, weight);
  if (coarseClock.now <= st.lastSyncAt + LEASE_S * 1000) return { result: onPolicy };
  if (t.strategy === "open") return { result: { allowed: true, reason: "lease_expired" } };
  if (t.strategy === "last_policy") return { result: { allowed: onPolicy.allowed, reason: "lease_expired" } };
  return { reason: "lease_expired" }; // fixed_rps: allowed or not by the bucket; the rate is checked apart
}

function drive(): void {
  for (const t of tracked) {
    for (const [tag, weight] of CALLS) {
      const want = expected(t, tag, weight);
      const got = t.ws.gate(tag, weight);
      t.calls++;
      if (want.result && (got.allowed !== want.result.allowed || got.reason !== want.result.reason)) {
        if (t.mismatches.length < 5)
          t.mismatches.push(`${t.strategy} ${tag}/${weight}: got ${JSON.stringify(got)}, want ${JSON.stringify(want.result)}`);
      }
      if (want.reason && got.reason !== want.reason && t.mismatches.length < 5)
        t.mismatches.push(`${t.strategy}: reason ${got.reason}, want ${want.reason}`);
      if (got.reason === "lease_expired") {
        if (got.allowed) t.leaseExpiredAllowed++;
        else t.leaseExpiredDenied++;
        if (t.strategy === "fixed_rps" && got.allowed) t.safeModeAllowedAt.push(coarseClock.now);
      }
    }
    if (spreadTags) {
      // thousands of distinct tags: memory must stay bounded
      const tag = `t${uniqueTag++}`;
      t.ws.gate(tag, 1);
      t.ws.reportLatency(1, tag);
      t.calls++;
    }
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
  await eventually(() => tracked.every((t) => (t.ws.status().lastSyncAt ?? 0) > end), 3000, `resync after ${fault}`);
}

beforeAll(async () => {
  process.on("unhandledRejection", onUnhandled);
  timeoutsBefore = countTimeouts();
  cp = await startControlPlane({ pulseInterval: 100, leaseDurationSeconds: LEASE_S });
  policy = cp.setPolicy({ tagMaxWeights: { free: 0, pro: 5 }, globalMaxWeight: 10 });
  tracked = STRATEGIES.map((strategy) => ({
    ...clientOf(cp, { safeModeStrategy: strategy, safeModeMaxRps: SAFE_RPS, instanceId: `i-${strategy}`, requestTimeoutMs: 300 }),
    strategy,
    calls: 0,
    mismatches: [],
    leaseExpiredAllowed: 0,
    leaseExpiredDenied: 0,
    safeModeAllowedAt: [],
  }));
  driver = setInterval(drive, 2);
}, 20_000);

afterAll(async () => {
  if (driver) clearInterval(driver);
  process.off("unhandledRejection", onUnhandled);
  fatal.mockRestore();
  warn.mockRestore();
  await cp.stop();
});

describe("the control plane misbehaves; gate() keeps answering right", () => {
  it("bootstrap: allowed before the first sync, the policy once synced", async () => {
    for (const t of tracked) expect(await t.ws.ready(3000)).toBe(true);
    await sleep(300);
    for (const t of tracked) {
      expect(t.ws.gate("free")).toEqual({ allowed: false, reason: "tag_blocked" });
      t.calls++;
      expect(t.mismatches).toEqual([]);
    }
  });

  it("short faults (each shorter than the lease): the last policy holds, every call as the model says", async () => {
    await phase("error500", 600);
    await phase("garbage", 600);
    await phase("bad_policy", 600);
    await phase("hang", 800);
    await phase("none", 800, () => {
      cp.delayMs = 250; // slow, but within the 300 ms request deadline
    });
    await phase("accept_then_drop", 600);
    await phase("none", 800, () => cp.stop()); // refuses connections
    for (const t of tracked) {
      expect(t.mismatches).toEqual([]);
      expect(t.leaseExpiredAllowed + t.leaseExpiredDenied).toBe(0);
      expect(t.ws.status().safeMode).toBe(false);
      const codes = new Set(t.errors.map((e) => e.code));
      expect(codes).toContain("PULSE_FAILED");
      expect(codes).toContain("INVALID_POLICY");
    }
    expect(cp.pulses.some((p) => !p.counted)).toBe(true); // accept_then_drop made the client re-send: counted once
    expect(fatal).not.toHaveBeenCalled();
  }, 20_000);

  it("an outage longer than the lease: safe mode by strategy, [WAITSTATE-FATAL] once each, memory bounded", async () => {
    await cp.stop();
    spreadTags = true;
    await eventually(() => tracked.every((t) => t.ws.status().safeMode), 5000, "safe mode");
    await sleep(1500);
    spreadTags = false;
    const fatalLines = fatal.mock.calls.map((c) => String(c[0])).filter((l) => l.startsWith("[WAITSTATE-FATAL]"));
    expect(fatalLines).toHaveLength(3);
    for (const t of tracked) {
      expect(t.mismatches).toEqual([]);
      expect(t.leaseExpiredAllowed).toBeGreaterThan(0);
      if (t.strategy === "open") expect(t.leaseExpiredDenied).toBe(0);
      if (t.strategy === "last_policy") expect(t.leaseExpiredDenied).toBeGreaterThan(0);
      expect(t.errors.some((e) => e.code === "SAFE_MODE")).toBe(true);
      expect(t.ws.status().pendingPulses).toBeLessThanOrEqual(2);
    }
    const rps = tracked.find((t) => t.strategy === "fixed_rps")!;
    expect(rps.leaseExpiredDenied).toBeGreaterThan(0);
    const times = rps.safeModeAllowedAt;
    const span = (times.at(-1)! - times[0]!) / 1000;
    // a full bucket (SAFE_RPS) plus SAFE_RPS per second after it
    expect(times.length).toBeLessThanOrEqual(SAFE_RPS + Math.ceil(SAFE_RPS * span) + 1);
    expect(uniqueTag).toBeGreaterThan(1000);
  }, 20_000);

  it("comes back: normal gating on the next sync, and the usage counted equals the calls made", async () => {
    await cp.start();
    await eventually(() => tracked.every((t) => !t.ws.status().safeMode), 5000, "resync");
    const expiredBefore = tracked.map((t) => t.leaseExpiredAllowed + t.leaseExpiredDenied);
    await sleep(500);
    tracked.forEach((t, i) => expect(t.leaseExpiredAllowed + t.leaseExpiredDenied).toBe(expiredBefore[i]));
    if (driver) clearInterval(driver);
    driver = null;
    await Promise.all(tracked.map((t) => t.ws.shutdown()));
    for (const t of tracked) {
      expect(t.mismatches).toEqual([]);
      expect(cp.countedUsage(t.ws.instanceId)).toBe(t.calls);
    }
    for (const p of cp.pulses) {
      expect((p.body.tagMetrics as unknown[]).length).toBeLessThanOrEqual(512);
      expect(Buffer.byteLength(JSON.stringify(p.body))).toBeLessThan(64 * 1024);
    }
    expect(cp.pulses.some((p) => (p.body.tagMetrics as Array<{ tag: string }>).some((m) => m.tag === "__other__"))).toBe(true);
    expect(unhandled).toEqual([]);
    expect(clockRunning()).toBe(false);
    await sleep(50);
    expect(countTimeouts()).toBeLessThanOrEqual(timeoutsBefore);
  }, 20_000);
});
