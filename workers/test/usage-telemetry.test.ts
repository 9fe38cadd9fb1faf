import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { RollupRow } from "@waitstate/durable-objects";
import { call, createOrg, expectError } from "./helpers.js";

// The aggregators' minute alarm writes these tables; the tests write the rows it would.

async function seedUsage(orgId: string, month: string, calls: number, bounced: number) {
  await env.DB.prepare("INSERT INTO usage_monthly (org_id, month, calls, bounced) VALUES (?, ?, ?, ?)")
    .bind(orgId, month, calls, bounced)
    .run();
}

/** A rollup row as the aggregator writes it, for one site. */
interface Rollup extends RollupRow {
  siteId: string;
}

async function seedRollup(orgId: string, r: Rollup) {
  await env.DB.prepare(
    "INSERT INTO telemetry_rollups (org_id, site_id, tag, minute, calls, bounced, errors, p50, p95, p99) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
  )
    .bind(orgId, r.siteId, r.tag, r.minute, r.calls, r.bounced, r.errors, r.p50, r.p95, r.p99)
    .run();
}

const rollup = (siteId: string, tag: string, minute: number, calls = 10): Rollup => ({
  siteId,
  tag,
  minute,
  calls,
  bounced: 1,
  errors: 2,
  p50: 12.5,
  p95: 80,
  p99: null,
});

async function seedEvent(orgId: string, siteId: string, seq: string, at: number, kind = "fired") {
  await env.DB.prepare(
    "INSERT INTO reflex_events (org_id, site_id, seq, rule_id, kind, at, tag_name, metric, metric_tag, value, operator, threshold) VALUES (?, ?, ?, 'rule_a', ?, ?, 'free', 'p95_latency', NULL, 612.5, 'gt', 500)",
  )
    .bind(orgId, siteId, seq, kind, at)
    .run();
}

const MINUTE = 60_000;
/** The start of the minute `minutesAgo` minutes before now. */
const minuteAgo = (minutesAgo: number) => Math.floor(Date.now() / MINUTE) * MINUTE - minutesAgo * MINUTE;

describe("GET /v1/usage", () => {
  it("lists every month newest first with the plan's allowance", async () => {
    const { org, token } = await createOrg("Team", "pro");
    await seedUsage(org.id, "2026-01", 1000, 10);
    await seedUsage(org.id, "2026-03", 3000, 30);
    await seedUsage(org.id, "2025-12", 500, 0);
    const res = await call("GET", "/v1/usage", { token });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      plan: "pro",
      monthlyCallLimit: 100_000_000,
      usage: [
        { month: "2026-03", calls: 3000, bounced: 30 },
        { month: "2026-01", calls: 1000, bounced: 10 },
        { month: "2025-12", calls: 500, bounced: 0 },
      ],
    });
  });

  it.each([
    ["hobby", 1_000_000],
    ["enterprise", null],
  ])("states the %s plan's monthly allowance (null: unlimited)", async (plan, limit) => {
    const { token } = await createOrg("X", plan);
    expect((await call("GET", "/v1/usage", { token })).json).toEqual({ plan, monthlyCallLimit: limit, usage: [] });
  });

  it("answers one month with ?month=, zeros when it had no calls", async () => {
    const { org, token } = await createOrg();
    await seedUsage(org.id, "2026-01", 1000, 10);
    await seedUsage(org.id, "2026-02", 2000, 20);
    expect((await call("GET", "/v1/usage?month=2026-02", { token })).json.usage).toEqual([{ month: "2026-02", calls: 2000, bounced: 20 }]);
    expect((await call("GET", "/v1/usage?month=2024-07", { token })).json.usage).toEqual([{ month: "2024-07", calls: 0, bounced: 0 }]);
  });

  it.each(["2026-13", "2026-00", "2026-1", "26-01", "2026-01-01", "", "latest"])(
    "refuses month=%s: 400 VALIDATION_FAILED",
    async (month) => {
      const { token } = await createOrg();
      const error = expectError(await call("GET", `/v1/usage?month=${month}`, { token }), 400, "VALIDATION_FAILED");
      expect(error.message).toMatch(/^month: /);
    },
  );

  it("needs a management token and shows only the caller's org", async () => {
    const a = await createOrg("A");
    const b = await createOrg("B");
    await seedUsage(a.org.id, "2026-01", 1000, 10);
    expectError(await call("GET", "/v1/usage"), 401, "UNAUTHORIZED");
    expectError(await call("GET", "/v1/usage", { token: "ws_mgmt_nope" }), 401, "INVALID_TOKEN");
    expect((await call("GET", "/v1/usage", { token: b.token })).json.usage).toEqual([]);
    expect((await call("GET", "/v1/usage?month=2026-01", { token: b.token })).json.usage).toEqual([
      { month: "2026-01", calls: 0, bounced: 0 },
    ]);
    expect((await call("GET", "/v1/usage", { token: a.token })).json.usage).toEqual([{ month: "2026-01", calls: 1000, bounced: 10 }]);
  });
});

describe("GET /v1/telemetry", () => {
  it("answers the last 60 minutes by default, oldest minute first, all sites and tags", async () => {
    const { org, token } = await createOrg();
    await seedRollup(org.id, rollup("web", "__site__", minuteAgo(90)));
    await seedRollup(org.id, rollup("web", "free", minuteAgo(2), 7));
    await seedRollup(org.id, rollup("web", "__site__", minuteAgo(2), 9));
    await seedRollup(org.id, rollup("api", "__site__", minuteAgo(30), 4));
    const res = await call("GET", "/v1/telemetry", { token });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      rollups: [
        rollup("api", "__site__", minuteAgo(30), 4),
        rollup("web", "__site__", minuteAgo(2), 9),
        rollup("web", "free", minuteAgo(2), 7),
      ],
    });
  });

  it("filters by siteId, tag, from/to (both inclusive) and limit", async () => {
    const { org, token } = await createOrg();
    const base = minuteAgo(10);
    for (let i = 0; i < 5; i++) {
      await seedRollup(org.id, rollup("web", "free", base + i * MINUTE, i));
      await seedRollup(org.id, rollup("web", "pro", base + i * MINUTE, 100 + i));
      await seedRollup(org.id, rollup("api", "free", base + i * MINUTE, 200 + i));
    }
    const get = async (query: string) => {
      const res = await call("GET", `/v1/telemetry?${query}`, { token });
      expect(res.status, res.text).toBe(200);
      return (res.json.rollups as Rollup[]).map((r) => `${r.siteId}/${r.tag}/${r.calls}`);
    };
    const range = `from=${base + MINUTE}&to=${base + 3 * MINUTE}`;
    expect(await get(`siteId=web&tag=free&${range}`)).toEqual(["web/free/1", "web/free/2", "web/free/3"]);
    expect(await get(`tag=free&${range}`)).toEqual([
      "api/free/201",
      "web/free/1",
      "api/free/202",
      "web/free/2",
      "api/free/203",
      "web/free/3",
    ]);
    expect(await get(`siteId=web&${range}&limit=3`)).toEqual(["web/free/1", "web/pro/101", "web/free/2"]);
    expect(await get(`siteId=nosuch&${range}`)).toEqual([]);
    // Only `from`: up to now.
    expect(await get(`siteId=api&from=${base + 4 * MINUTE}`)).toEqual(["api/free/204"]);
  });

  it("caps the range at 31 days and the limit at 10000", async () => {
    const { token } = await createOrg();
    const day = 86_400_000;
    expect((await call("GET", `/v1/telemetry?from=0&to=${31 * day}`, { token })).status).toBe(200);
    expect((await call("GET", "/v1/telemetry?limit=10000", { token })).status).toBe(200);
    const tooLong = expectError(await call("GET", `/v1/telemetry?from=0&to=${31 * day + 1}`, { token }), 400, "VALIDATION_FAILED");
    expect(tooLong.message).toContain("31 days");
  });

  it.each([
    ["from after to", "from=2000&to=1000", "from"],
    ["a range over 31 days", "from=1&to=2678400002", "to"],
    ["only a from long ago", "from=0", "to"],
    ["a negative from", "from=-1", "from"],
    ["a fractional to", "to=1.5", "to"],
    ["an exponent", "from=1e3", "from"],
    ["an empty from", "from=", "from"],
    ["a date string", "from=2026-01-01", "from"],
    ["limit 0", "limit=0", "limit"],
    ["limit over 10000", "limit=10001", "limit"],
    ["a siteId with spaces", "siteId=a%20b", "siteId"],
    ["an empty tag", "tag=", "tag"],
  ])("refuses %s: 400 VALIDATION_FAILED naming the parameter", async (_case, query, field) => {
    const { token } = await createOrg();
    const error = expectError(await call("GET", `/v1/telemetry?${query}`, { token }), 400, "VALIDATION_FAILED");
    expect(error.message).toMatch(new RegExp(`(^|; )${field}: `));
  });

  it("needs a management token and shows only the caller's org", async () => {
    const a = await createOrg("A");
    const b = await createOrg("B");
    await seedRollup(a.org.id, rollup("web", "__site__", minuteAgo(1)));
    expectError(await call("GET", "/v1/telemetry"), 401, "UNAUTHORIZED");
    expectError(await call("GET", "/v1/telemetry", { token: "ws_mgmt_nope" }), 401, "INVALID_TOKEN");
    expect((await call("GET", "/v1/telemetry?siteId=web", { token: b.token })).json.rollups).toEqual([]);
    expect((await call("GET", "/v1/telemetry?siteId=web", { token: a.token })).json.rollups).toHaveLength(1);
  });
});

describe("GET /v1/reflex-events", () => {
  it("lists fires and clears newest first, in camelCase, filtered by siteId and limited", async () => {
    const { org, token } = await createOrg();
    await seedEvent(org.id, "web", "100-1", 1_750_000_000_000);
    await seedEvent(org.id, "web", "100-2", 1_750_000_030_000, "cleared");
    await seedEvent(org.id, "api", "200-1", 1_750_000_010_000);
    // Two events of one instant keep the order they were written in (seq is text: "100-10" < "100-9").
    await seedEvent(org.id, "web", "100-9", 1_750_000_040_000);
    await seedEvent(org.id, "web", "100-10", 1_750_000_040_000, "cleared");

    const all = await call("GET", "/v1/reflex-events", { token });
    expect(all.status).toBe(200);
    expect(all.json.events.map((e: { seq: string }) => e.seq)).toEqual(["100-10", "100-9", "100-2", "200-1", "100-1"]);
    expect(all.json.events[2]).toEqual({
      siteId: "web",
      seq: "100-2",
      ruleId: "rule_a",
      kind: "cleared",
      at: 1_750_000_030_000,
      tagName: "free",
      metric: "p95_latency",
      metricTag: null,
      value: 612.5,
      operator: "gt",
      threshold: 500,
    });
    const web = await call("GET", "/v1/reflex-events?siteId=web&limit=2", { token });
    expect(web.json.events.map((e: { seq: string }) => e.seq)).toEqual(["100-10", "100-9"]);
    expect((await call("GET", "/v1/reflex-events?siteId=api", { token })).json.events.map((e: { seq: string }) => e.seq)).toEqual([
      "200-1",
    ]);
  });

  it.each([
    ["limit 0", "limit=0", "limit"],
    ["limit over 1000", "limit=1001", "limit"],
    ["a word for limit", "limit=all", "limit"],
    ["a siteId with a slash", "siteId=a%2Fb", "siteId"],
  ])("refuses %s: 400 VALIDATION_FAILED", async (_case, query, field) => {
    const { token } = await createOrg();
    const error = expectError(await call("GET", `/v1/reflex-events?${query}`, { token }), 400, "VALIDATION_FAILED");
    expect(error.message).toMatch(new RegExp(`^${field}: `));
  });

  it("needs a management token and shows only the caller's org", async () => {
    const a = await createOrg("A");
    const b = await createOrg("B");
    await seedEvent(a.org.id, "web", "1-1", 1_750_000_000_000);
    expectError(await call("GET", "/v1/reflex-events"), 401, "UNAUTHORIZED");
    expectError(await call("GET", "/v1/reflex-events", { token: "ws_mgmt_nope" }), 401, "INVALID_TOKEN");
    expect((await call("GET", "/v1/reflex-events?siteId=web", { token: b.token })).json.events).toEqual([]);
    expect((await call("GET", "/v1/reflex-events", { token: a.token })).json.events).toHaveLength(1);
  });
});
