import { env } from "cloudflare:workers";
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { LatencyHistogram, PulseSchema, type Pulse } from "@waitstate/protocol";
import { SiteAggregator, SITE_ROLLUP_TAG } from "@waitstate/durable-objects";
import reflexText from "../../protocol/vectors/reflex.json?raw";
import { createOrg } from "./helpers.js";
import { insertRule, seedPulse, stubFor } from "./pulse-helpers.js";

const pulse = (overrides: Record<string, unknown> = {}): Pulse => PulseSchema.parse(seedPulse(overrides));

async function dropAlarm(stub: ReturnType<typeof stubFor>) {
  await runInDurableObject(stub, (_instance, state) => state.storage.deleteAlarm());
}

interface VectorCase {
  name: string;
  rules: Array<Record<string, unknown> & { id: string }>;
  tags?: Record<string, { maxWeight?: number; priority?: number }>;
  windowSeconds?: number;
  initialStates?: unknown;
  steps: Array<{
    now: number;
    pulses: Array<Record<string, unknown> & { instanceId: string; ts: number }>;
    expect: { globalMaxWeight: number | null; tagMaxWeights: Record<string, number | null>; events: Array<[string, string]> };
  }>;
}

describe("SiteAggregator reproduces the reflex vectors through real pulses", () => {
  /**
   * A vector lists each step's window contents; played as arrivals, the
   * aggregator's window holds every pulse of the last 30 s. Cases where the two
   * agree (and that start from no state) can be replayed through real pulses.
   */
  const replayable = (c: VectorCase) => {
    if (c.initialStates !== undefined || c.windowSeconds !== undefined) return false;
    const arrived = new Map<string, number>();
    return c.steps.every((step) => {
      for (const p of step.pulses) arrived.set(`${p.instanceId}@${p.ts}`, p.ts);
      const window = [...arrived]
        .filter(([, ts]) => ts > step.now - 30_000 && ts <= step.now)
        .map(([k]) => k)
        .sort();
      return JSON.stringify(window) === JSON.stringify(step.pulses.map((p) => `${p.instanceId}@${p.ts}`).sort());
    });
  };
  const cases = (JSON.parse(reflexText) as { cases: VectorCase[] }).cases.filter(replayable);
  it("covers the progressive-shedding table and the custom-metric rule", () => {
    const names = cases.map((c) => c.name);
    expect(names.some((n) => n.startsWith("progressive shedding table, row by row"))).toBe(true);
    expect(names.some((n) => n.startsWith("custom metric rule"))).toBe(true);
  });

  it.each(cases.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    const { org } = await createOrg(`Vector ${c.name.slice(0, 40)}`);
    const siteId = "vector";
    const idMap = new Map<string, string>();
    for (const rule of c.rules) idMap.set(rule.id, await insertRule(org.id, { ...rule, id: `${org.id}_${rule.id}` }));
    for (const [name, t] of Object.entries(c.tags ?? {})) {
      await env.DB.prepare("INSERT INTO tags (id, org_id, name, max_weight, priority) VALUES (?, ?, ?, ?, ?)")
        .bind(`tag_${org.id}_${name}`, org.id, name, t.maxWeight ?? 10, t.priority ?? 0)
        .run();
    }
    // The site exists even when a case's first step has no pulses.
    await env.DB.prepare("INSERT INTO sites (org_id, site_id) VALUES (?, ?)").bind(org.id, siteId).run();
    const stub = stubFor(org.id, siteId);
    const seen = new Set<string>();
    for (const [i, step] of c.steps.entries()) {
      for (const p of step.pulses) {
        const key = `${p.instanceId}@${p.ts}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const result = await stub.ingest({ orgId: org.id, siteId, pulse: PulseSchema.parse(p), receivedAt: p.ts });
        expect(result.ok).toBe(true);
        await dropAlarm(stub);
      }
      const result = await stub.policy(org.id, siteId, step.now);
      if (!result.ok) throw new Error(result.message);
      expect({ step: i, global: result.policy.globalMaxWeight, tags: result.policy.tagMaxWeights }).toEqual({
        step: i,
        global: step.expect.globalMaxWeight,
        tags: step.expect.tagMaxWeights,
      });
    }
    // Every fire and clear was recorded, in order, with the rule id.
    const expected = c.steps.flatMap((s) => s.expect.events.map(([kind, id]) => [kind, `${org.id}_${id}`]));
    const events = (await stub.events(500)).reverse();
    expect(events.map((e) => [e.kind, e.ruleId])).toEqual(expected);
  });
});

describe("SiteAggregator state", () => {
  it("survives a restart: policy version, rule states, window and per-instance timestamps come back from SQLite", async () => {
    const { org } = await createOrg("Restart Co");
    await insertRule(org.id, { tagName: "free", metric: "latency", operator: "gt", threshold: 500, action: "block", priority: 1 });
    const stub = stubFor(org.id, "prod");
    const now = Date.now();
    const sent = pulse({ siteId: "prod", ts: now, metrics: { latency: 900, errors: 0 } });
    const hot = await stub.ingest({ orgId: org.id, siteId: "prod", pulse: sent, receivedAt: now });
    expect(hot.ok && hot.policy).toMatchObject({ version: 1, tagMaxWeights: { free: 0 } });

    await runInDurableObject(stub, async (_instance, state) => {
      // A new instance over the same storage is what workerd builds after eviction or a restart.
      const fresh = new SiteAggregator(state, env);
      const again = await fresh.policy(org.id, "prod", now + 1);
      expect(again.ok && again.policy).toMatchObject({ version: 1, tagMaxWeights: { free: 0 } });
      const replay = await fresh.ingest({ orgId: org.id, siteId: "prod", pulse: sent, receivedAt: now + 2 });
      expect(replay.ok && replay.counted).toBe(false);
      const events = await fresh.events();
      expect(events.map((e) => [e.kind, e.metric, e.value])).toEqual([["fired", "latency", 900]]);
      const rows = state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM pulses").one();
      expect(rows.n).toBe(1);
    });
  });

  it("rolls complete minutes up into D1 on its alarm: telemetry, usage, events, last pulse", async () => {
    const { org } = await createOrg("Rollup Co");
    const rule = await insertRule(org.id, {
      tagName: "free",
      metric: "errors",
      operator: "gt",
      threshold: 5,
      action: "block",
      priority: 1,
    });
    const stub = stubFor(org.id, "prod");
    const minute = Math.floor(Date.now() / 60_000) * 60_000 - 120_000;
    const h = LatencyHistogram.fromValues([10, 20, 30, 40, 1000]).encode();
    for (const [i, instanceId] of ["web-01", "web-02"].entries()) {
      const res = await stub.ingest({
        orgId: org.id,
        siteId: "prod",
        receivedAt: minute + 1000 * (i + 1),
        pulse: pulse({
          siteId: "prod",
          instanceId,
          usageDelta: 100,
          bouncedUnits: 10,
          metrics: { latency: 220, errors: 4, latencyHistogram: h },
          tagMetrics: [{ tag: "free", count: 100, bounced: 10, errors: 4, latencyHistogram: h }],
          ts: minute + 1000 * (i + 1),
        }),
      });
      expect(res.ok).toBe(true);
    }
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const rollups = await env.DB.prepare(
      "SELECT tag, minute, calls, bounced, errors, p50, p99 FROM telemetry_rollups WHERE org_id = ? ORDER BY tag",
    )
      .bind(org.id)
      .all();
    const merged = LatencyHistogram.fromValues([10, 20, 30, 40, 1000, 10, 20, 30, 40, 1000]);
    const [expectedP50, expectedP99] = [merged.quantile(0.5), merged.quantile(0.99)];
    expect(rollups.results).toEqual([
      { tag: SITE_ROLLUP_TAG, minute, calls: 200, bounced: 20, errors: 8, p50: expectedP50, p99: expectedP99 },
      { tag: "free", minute, calls: 200, bounced: 20, errors: 8, p50: expectedP50, p99: expectedP99 },
    ]);
    const usage = await env.DB.prepare("SELECT month, calls, bounced FROM usage_monthly WHERE org_id = ?").bind(org.id).all();
    expect(usage.results).toEqual([{ month: new Date(minute).toISOString().slice(0, 7), calls: 200, bounced: 20 }]);
    const site = await env.DB.prepare("SELECT last_pulse_at FROM sites WHERE org_id = ? AND site_id = 'prod'").bind(org.id).first();
    expect(site).toEqual({ last_pulse_at: minute + 2000 });
    const events = await env.DB.prepare("SELECT rule_id, kind, metric, value, threshold FROM reflex_events WHERE org_id = ?")
      .bind(org.id)
      .all();
    expect(events.results).toEqual([{ rule_id: rule, kind: "fired", metric: "errors", value: 8, threshold: 5 }]);
    // A second alarm writes nothing twice.
    await runDurableObjectAlarm(stub);
    const again = await env.DB.prepare("SELECT sum(calls) AS calls FROM telemetry_rollups WHERE org_id = ? AND tag = ?")
      .bind(org.id, SITE_ROLLUP_TAG)
      .first();
    expect(again).toEqual({ calls: 200 });
  });

  it("a flush that fails half-way through D1 is redone without counting the written half twice", async () => {
    const { org } = await createOrg("Crash Co", "enterprise");
    const stub = stubFor(org.id, "prod");
    const minute = Math.floor(Date.now() / 60_000) * 60_000 - 120_000;
    // 80 tags: the site row + 80 tag rows + usage + last pulse = 83 statements, two D1 batches
    const tags = Array.from({ length: 80 }, (_, i) => `t${String(i).padStart(2, "0")}`);
    for (const [i, instanceId] of ["web-01", "web-02"].entries()) {
      const res = await stub.ingest({
        orgId: org.id,
        siteId: "prod",
        receivedAt: minute + 1000 * (i + 1),
        pulse: pulse({
          siteId: "prod",
          instanceId,
          usageDelta: 160,
          bouncedUnits: 0,
          ts: minute + 1000 * (i + 1),
          tagMetrics: tags.map((tag) => ({ tag, count: 2 })),
        }),
      });
      expect(res.ok).toBe(true);
    }
    // D1 refuses the second batch (a real trigger, so the batch's transaction really rolls back)
    await env.DB.exec(
      "CREATE TRIGGER fail_t70 BEFORE INSERT ON telemetry_rollups WHEN NEW.tag = 't70' BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
    );
    await expect(runDurableObjectAlarm(stub)).rejects.toThrow(/injected failure/);
    const siteCalls = () =>
      env.DB.prepare("SELECT calls FROM telemetry_rollups WHERE org_id = ? AND tag = ?")
        .bind(org.id, SITE_ROLLUP_TAG)
        .first<{ calls: number }>();
    const batches = async () =>
      (
        await env.DB.prepare("SELECT batch FROM rollup_flushes WHERE org_id = ? ORDER BY batch").bind(org.id).all<{ batch: number }>()
      ).results.map((r) => r.batch);
    expect(await siteCalls()).toEqual({ calls: 320 }); // the first batch is in D1
    expect(await batches()).toEqual([0]);
    expect(await env.DB.prepare("SELECT calls FROM usage_monthly WHERE org_id = ?").bind(org.id).first()).toBeNull();
    await runInDurableObject(stub, (_instance, state) => {
      expect(state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM pulses WHERE rolled = 0").one().n).toBe(2);
      expect(state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM rollup_pending").one().n).toBe(1);
    });

    // D1 is back; the next alarm (after a restart of the object, as after a crash) redoes the same flush
    await env.DB.exec("DROP TRIGGER fail_t70");
    await runInDurableObject(stub, async (_instance, state) => {
      await state.storage.setAlarm(Date.now() + 60_000);
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await siteCalls()).toEqual({ calls: 320 });
    const perTag = await env.DB.prepare(
      "SELECT tag, calls FROM telemetry_rollups WHERE org_id = ? AND tag IN ('t00', 't47', 't48', 't70', 't79') ORDER BY tag",
    )
      .bind(org.id)
      .all();
    expect(perTag.results).toEqual(["t00", "t47", "t48", "t70", "t79"].map((tag) => ({ tag, calls: 4 })));
    expect(await env.DB.prepare("SELECT calls FROM usage_monthly WHERE org_id = ?").bind(org.id).first()).toEqual({ calls: 320 });
    expect(await batches()).toEqual([0, 1]);
    await runInDurableObject(stub, (_instance, state) => {
      expect(state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM rollup_pending").one().n).toBe(0);
    });
    await dropAlarm(stub);
  });

  it("remembers each instance's last ts after its pulses were rolled up and deleted, across a restart", async () => {
    const { org } = await createOrg("Replay Memory Co");
    const stub = stubFor(org.id, "prod");
    const past = Math.floor(Date.now() / 60_000) * 60_000 - 120_000;
    const sent = pulse({ siteId: "prod", ts: past });
    expect((await stub.ingest({ orgId: org.id, siteId: "prod", pulse: JSON.stringify(sent), receivedAt: past })).ok).toBe(true);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await runInDurableObject(stub, async (_instance, state) => {
      expect(state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM pulses").one().n).toBe(0);
      const fresh = new SiteAggregator(state, env);
      const replay = await fresh.ingest({ orgId: org.id, siteId: "prod", pulse: JSON.stringify(sent) });
      expect(replay.ok && replay.counted).toBe(false);
      const next = await fresh.ingest({ orgId: org.id, siteId: "prod", pulse: { ...sent, ts: past + 1 } });
      expect(next.ok && next.counted).toBe(true);
    });
  });

  it("trims custom metrics to the plan's allowance before they reach the rules", async () => {
    const { org } = await createOrg("Hobby Metrics", "hobby");
    await insertRule(org.id, {
      tagName: "search",
      metric: "queue_depth",
      metricTag: "search",
      operator: "gt",
      threshold: 100,
      action: "block",
      priority: 1,
    });
    const stub = stubFor(org.id, org.id);
    const res = await stub.ingest({
      orgId: org.id,
      siteId: org.id,
      pulse: pulse({
        tagMetrics: [{ tag: "search", count: 10, customMetrics: { queue_depth: { min: 500, max: 500, sum: 500, count: 1 } } }],
      }),
    });
    // Hobby: custom metrics are not usable in rules, so the rule sees no data and matches nothing.
    expect(res.ok && res.policy.tagMaxWeights).toEqual({});
  });

  it("forgets everything on destroy()", async () => {
    const { org } = await createOrg("Gone Co");
    const stub = stubFor(org.id, "prod");
    await stub.ingest({ orgId: org.id, siteId: "prod", pulse: pulse({ siteId: "prod" }) });
    await stub.destroy();
    await runInDurableObject(stub, (_i, state) => {
      expect(state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM pulses").one().n).toBe(0);
    });
  });
});
