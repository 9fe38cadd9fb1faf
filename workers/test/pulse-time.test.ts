import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { PulseSchema } from "@waitstate/protocol";
import { SiteAggregator } from "@waitstate/durable-objects";
import { call, createOrg, expectError } from "./helpers.js";
import { orgWithKey, seedPulse, sendPulse, stubFor } from "./pulse-helpers.js";

const YEAR_MS = 365 * 24 * 3600_000;

describe("a pulse's ts is tied to its signed timestamp", () => {
  it("a ts a year ahead is refused (PULSE_TS_SKEW) and the instance's next normal pulse counts", async () => {
    const keys = await orgWithKey("Future Co");
    const now = Date.now();
    const ahead = await sendPulse(keys, seedPulse({ instanceId: "web-01", ts: now + YEAR_MS }), { timestamp: String(now) });
    const error = expectError(ahead, 400, "PULSE_TS_SKEW");
    expect(error.message).toContain("ahead of x-waitstate-timestamp");
    const next = await sendPulse(keys, seedPulse({ instanceId: "web-01", ts: now + 1, usageDelta: 1000, bouncedUnits: 0 }));
    expect(next.status, next.text).toBe(200);
    expect(next.headers.get("x-waitstate-counted")).toBe("true");
  });

  it("a ts as far ahead as allowed cannot blind the instance either: its next pulses count (and say the id is shared)", async () => {
    const keys = await orgWithKey("Near Future Co");
    const now = Date.now();
    const ahead = await sendPulse(keys, seedPulse({ instanceId: "web-01", ts: now + 4 * 60_000 }), { timestamp: String(now) });
    expect(ahead.headers.get("x-waitstate-counted")).toBe("true");
    for (let i = 1; i <= 3; i++) {
      const next = await sendPulse(keys, seedPulse({ instanceId: "web-01", ts: now + i, usageDelta: 10, bouncedUnits: 0 }));
      expect(next.headers.get("x-waitstate-counted"), `pulse ${i}`).toBe("true");
      expect(next.headers.get("x-waitstate-duplicate-instance")).toBe("true");
      // A re-send of it is still recognised: counted once.
      const again = await sendPulse(keys, seedPulse({ instanceId: "web-01", ts: now + i, usageDelta: 10, bouncedUnits: 0 }));
      expect(again.headers.get("x-waitstate-counted"), `re-send ${i}`).toBe("false");
    }
  });

  it("a ts behind the header is a re-send after an outage: accepted, counted once", async () => {
    const keys = await orgWithKey("Late Co");
    const built = Date.now() - 20 * 60_000;
    const first = await sendPulse(keys, seedPulse({ instanceId: "web-01", ts: built }));
    expect(first.headers.get("x-waitstate-counted")).toBe("true");
    const resent = await sendPulse(keys, seedPulse({ instanceId: "web-01", ts: built }));
    expect(resent.status).toBe(200);
    expect(resent.headers.get("x-waitstate-counted")).toBe("false");
    expect(resent.headers.get("x-waitstate-duplicate-instance")).toBeNull();
  });
});

describe("two processes sharing an instanceId", () => {
  it("every pulse of both counts once, across a restart of the aggregator, and both are told", async () => {
    const { org } = await createOrg("Twin Co");
    const stub = stubFor(org.id, "prod");
    const t0 = Date.now();
    // A's and B's pulses, each process in its own order (prevTs: its previous), arriving interleaved and out of ts order.
    const a = [0, 1, 2, 3].map((i) =>
      PulseSchema.parse(
        seedPulse({
          siteId: "prod",
          instanceId: "shared",
          ts: t0 + 1000 * i + 500,
          usageDelta: 100 + i,
          bouncedUnits: 0,
          ...(i > 0 ? { prevTs: t0 + 1000 * (i - 1) + 500 } : {}),
        }),
      ),
    );
    const b = [0, 1, 2, 3].map((i) =>
      PulseSchema.parse(
        seedPulse({
          siteId: "prod",
          instanceId: "shared",
          ts: t0 + 1000 * i + 300,
          usageDelta: 10 + i,
          bouncedUnits: 0,
          ...(i > 0 ? { prevTs: t0 + 1000 * (i - 1) + 300 } : {}),
        }),
      ),
    );
    const send = async (target: { ingest: SiteAggregator["ingest"] }, p: (typeof a)[number], at: number) => {
      const result = await target.ingest({ orgId: org.id, siteId: "prod", pulse: JSON.stringify(p), receivedAt: at });
      if (!result.ok) throw new Error(result.message);
      return { counted: result.counted, duplicate: result.duplicate };
    };
    expect(await send(stub, a[0]!, t0 + 600)).toEqual({ counted: true, duplicate: false });
    expect(await send(stub, b[0]!, t0 + 610)).toEqual({ counted: true, duplicate: true }); // behind A's latest
    expect(await send(stub, b[0]!, t0 + 620)).toEqual({ counted: false, duplicate: false }); // B's re-send
    expect(await send(stub, b[1]!, t0 + 1400)).toEqual({ counted: true, duplicate: true }); // after A's latest, but its prevTs is B's own
    expect(await send(stub, a[1]!, t0 + 1600)).toEqual({ counted: true, duplicate: true }); // after B's 1,300, but its prevTs (500) is before it
    await runInDurableObject(stub, async (_instance, state) => {
      // The control plane restarts: a new object over the same storage.
      const fresh = new SiteAggregator(state, env);
      expect(await send(fresh, a[1]!, t0 + 2000)).toEqual({ counted: false, duplicate: false }); // A's re-send after the restart
      expect(await send(fresh, b[2]!, t0 + 2100)).toEqual({ counted: true, duplicate: true });
      expect(await send(fresh, a[2]!, t0 + 2600)).toEqual({ counted: true, duplicate: true });
      expect(await send(fresh, b[1]!, t0 + 2700)).toEqual({ counted: false, duplicate: false }); // B's old re-send
      expect(await send(fresh, b[3]!, t0 + 3400)).toEqual({ counted: true, duplicate: true });
      expect(await send(fresh, a[3]!, t0 + 3600)).toEqual({ counted: true, duplicate: true });
      const ledger = state.storage.sql.exec<{ n: number }>("SELECT sum(usage) AS n FROM pulses").one().n;
      const sent = [...a, ...b].reduce((sum, p) => sum + p.usageDelta, 0);
      expect(ledger).toBe(sent);
    });
  });

  it("the pulse answer carries x-waitstate-duplicate-instance: true", async () => {
    const keys = await orgWithKey("Twin Header Co");
    const t = Date.now();
    const first = await sendPulse(keys, seedPulse({ instanceId: "shared", ts: t }));
    expect(first.headers.get("x-waitstate-duplicate-instance")).toBeNull();
    const other = await sendPulse(keys, seedPulse({ instanceId: "shared", ts: t - 5, usageDelta: 3, bouncedUnits: 0 }));
    expect(other.headers.get("x-waitstate-counted")).toBe("true");
    expect(other.headers.get("x-waitstate-duplicate-instance")).toBe("true");
  });
});

describe("usageDelta is bounded by what an instance can plausibly have called", () => {
  it("one pulse claiming 1,000,000 calls cannot push a hobby org into cap_exceeded", async () => {
    const keys = await orgWithKey("Claim Co", "hobby");
    const res = await sendPulse(
      keys,
      seedPulse({ usageDelta: 1_000_000, bouncedUnits: 0, tagMetrics: [{ tag: "free", count: 1_000_000 }] }),
    );
    expect(res.status, res.text).toBe(200);
    expect(res.json).toMatchObject({ status: "ok" });
    await runInDurableObject(stubFor(keys.orgId, keys.orgId), (_instance, state) => {
      // A first pulse covers at most a second: 50,000 calls, and at most 1 % of hobby's 1,000,000 a month.
      expect(state.storage.sql.exec<{ n: number }>("SELECT sum(usage) AS n FROM pulses").one().n).toBe(10_000);
    });
    // A later pulse of the same instance, 2 s on, may claim up to 2 s worth (capped by the same 1 %).
    const later = await sendPulse(keys, seedPulse({ ts: Date.now() + 2000, usageDelta: 5000, bouncedUnits: 0 }));
    expect(later.json).toMatchObject({ status: "ok" });
  });

  it("with cap_exceeded and the kill switch on, the policy carries killSignal: true", async () => {
    const keys = await orgWithKey("Capped Kill Co", "hobby");
    const month = new Date().toISOString().slice(0, 7);
    await env.DB.prepare("INSERT INTO usage_monthly (org_id, month, calls, bounced) VALUES (?, ?, ?, 0)")
      .bind(keys.orgId, month, 1_000_000)
      .run();
    const first = await sendPulse(keys, seedPulse({ siteId: "prod" }));
    expect(first.json).toMatchObject({ status: "cap_exceeded", killSignal: false });
    const kill = await call("POST", "/v1/sites/prod/kill", { token: keys.token, body: { enabled: true } });
    expect(kill.json.policy).toMatchObject({ status: "cap_exceeded", killSignal: true });
    const next = await sendPulse(keys, seedPulse({ siteId: "prod", ts: Date.now() + 1 }));
    expect(next.json).toMatchObject({ status: "cap_exceeded", killSignal: true });
  });
});
