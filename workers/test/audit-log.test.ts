/**
 * The audit log: every management change writes one entry (who, what,
 * before → after), automatic actions are written by the aggregator as
 * `system`, and `GET /v1/audit-log` filters, pages and scopes them per org.
 */
import { env } from "cloudflare:workers";
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ADMIN, call, createOrg, expectError } from "./helpers.js";
import { insertRule, orgWithKey, seedPulse, sendPulse, stubFor } from "./pulse-helpers.js";

type Entry = {
  id: string;
  at: number;
  siteId: string | null;
  actor: { type: string; id: string | null; name: string | null };
  kind: string;
  target: string | null;
  before: any;
  after: any;
  details: any;
};

async function entries(token: string, query = ""): Promise<{ entries: Entry[]; nextCursor: string | null }> {
  const res = await call("GET", `/v1/audit-log${query}`, { token });
  expect(res.status, res.text).toBe(200);
  return res.json as { entries: Entry[]; nextCursor: string | null };
}

/** Polls until `probe` returns something truthy (the aggregator hands its entries over in the background). */
async function eventually<T>(probe: () => Promise<T | null | undefined | false>, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const tokenRow = (orgId: string) =>
  env.DB.prepare("SELECT id, name FROM management_tokens WHERE org_id = ?").bind(orgId).first<{ id: string; name: string }>();

describe("management changes are recorded with actor, target, before and after", () => {
  it("org.created by the ADMIN_TOKEN holder", async () => {
    const { org, token } = await createOrg("Audit Org Co");
    const { entries: list } = await entries(token);
    expect(list).toEqual([
      expect.objectContaining({
        kind: "org.created",
        target: org.id,
        siteId: null,
        actor: { type: "admin", id: null, name: "ADMIN_TOKEN", role: null },
        before: null,
        after: expect.objectContaining({ id: org.id, name: "Audit Org Co" }),
      }),
    ]);
    expect(list[0]!.id).toMatch(/^aud_[A-Za-z0-9_-]+$/);
  });

  it("tags, rules, keys, sites and the kill switch, each by the management token", async () => {
    const { org, token } = await createOrg("Audit Changes Co");
    const mt = await tokenRow(org.id);
    const actor = { type: "token", id: mt!.id, name: mt!.name, role: "admin" };

    const tag = (await call("POST", "/v1/tags", { token, body: { name: "free", maxWeight: 4 } })).json;
    await call("PATCH", `/v1/tags/${tag.id}`, { token, body: { maxWeight: 2 } });
    await call("DELETE", `/v1/tags/${tag.id}`, { token });

    const rule = (
      await call("POST", "/v1/reflex-rules", {
        token,
        body: { siteId: "prod", tagName: "free", metric: "latency", operator: "gt", threshold: 500, action: "block", priority: 1 },
      })
    ).json;
    await call("PATCH", `/v1/reflex-rules/${rule.id}`, { token, body: { threshold: 700 } });
    await call("DELETE", `/v1/reflex-rules/${rule.id}`, { token });

    const key = (await call("POST", "/v1/api-keys", { token, body: { name: "sdk" } })).json;
    const rotated = (await call("POST", `/v1/api-keys/${key.id}/rotate`, { token })).json;
    await call("DELETE", `/v1/api-keys/${rotated.id}`, { token });
    await call("DELETE", `/v1/api-keys/${rotated.id}`, { token }); // already revoked: nothing new

    expect((await call("POST", "/v1/sites", { token, body: { siteId: "prod" } })).status).toBe(201);
    await call("PATCH", "/v1/sites/prod", { token, body: { windowSeconds: 10 } });
    await call("POST", "/v1/sites/prod/kill", { token, body: { enabled: true } });
    await call("POST", "/v1/sites/prod/kill", { token, body: { enabled: false } });
    await call("DELETE", "/v1/sites/prod", { token });

    const { entries: list } = await entries(token, "?limit=200");
    const mine = list.filter((e) => e.kind !== "org.created").reverse();
    expect(mine.map((e) => e.kind)).toEqual([
      "tag.created",
      "tag.updated",
      "tag.deleted",
      "rule.created",
      "rule.updated",
      "rule.deleted",
      "key.created",
      "key.rotated",
      "key.revoked",
      "site.created",
      "site.updated",
      "kill.on",
      "kill.off",
      "site.deleted",
    ]);
    for (const e of mine) expect(e.actor, e.kind).toEqual(actor);
    const byKind = Object.fromEntries(mine.map((e) => [e.kind, e]));
    expect(byKind["tag.updated"]).toMatchObject({ target: tag.id, siteId: null, before: { maxWeight: 4 }, after: { maxWeight: 2 } });
    expect(byKind["tag.deleted"]).toMatchObject({ target: tag.id, before: { name: "free" }, after: null });
    expect(byKind["rule.created"]).toMatchObject({ target: rule.id, siteId: "prod", before: null, after: { threshold: 500 } });
    expect(byKind["rule.updated"]).toMatchObject({
      target: rule.id,
      siteId: "prod",
      before: { threshold: 500 },
      after: { threshold: 700 },
    });
    expect(byKind["key.rotated"]).toMatchObject({
      target: key.id,
      before: { id: key.id, revokedAt: null },
      after: { id: rotated.id },
      details: { replacedBy: rotated.id },
    });
    expect(byKind["key.revoked"]).toMatchObject({
      target: rotated.id,
      before: { revokedAt: null },
      after: { revokedAt: expect.any(Number) },
    });
    expect(JSON.stringify(mine)).not.toContain(key.secretKey); // secrets are never recorded
    expect(JSON.stringify(mine)).not.toContain(rotated.secretKey);
    expect(byKind["site.updated"]).toMatchObject({
      siteId: "prod",
      target: "prod",
      before: { settings: { windowSeconds: null } },
      after: { settings: { windowSeconds: 10 } },
    });
    expect(byKind["kill.on"]).toMatchObject({
      siteId: "prod",
      before: { killSwitch: false },
      after: { killSwitch: true },
      details: { changed: true },
    });
    expect(byKind["kill.off"]).toMatchObject({ before: { killSwitch: true }, after: { killSwitch: false } });
    expect(byKind["site.deleted"]).toMatchObject({ siteId: "prod", before: { siteId: "prod" } });
    // newest first
    expect(list.map((e) => e.at)).toEqual([...list.map((e) => e.at)].sort((a, b) => b - a));
  });

  it("a failed change records nothing", async () => {
    const { token } = await createOrg("Audit Failures Co");
    await call("POST", "/v1/tags", { token, body: { name: "dup" } });
    expectError(await call("POST", "/v1/tags", { token, body: { name: "dup" } }), 409, "CONFLICT");
    expectError(await call("POST", "/v1/reflex-rules", { token, body: { metric: "latency" } }), 400, "VALIDATION_FAILED");
    expectError(await call("PATCH", "/v1/tags/tag_nope", { token, body: { maxWeight: 1 } }), 404, "NOT_FOUND");
    const { entries: list } = await entries(token);
    expect(list.map((e) => e.kind)).toEqual(["tag.created", "org.created"]);
  });
});

describe("automatic actions are recorded as system", () => {
  it("site.created on the first pulse, rule.fired and rule.cleared with the value, threshold and operator", async () => {
    const keys = await orgWithKey("Audit Auto Co");
    const site = await call("POST", "/v1/sites", { token: keys.token, body: { siteId: "api", pulseIntervalMs: 250, windowSeconds: 0.5 } });
    expect(site.status, site.text).toBe(201);
    const ruleId = await insertRule(keys.orgId, {
      tagName: "free",
      metric: "latency",
      operator: "gt",
      threshold: 500,
      action: "block",
      priority: 1,
      cooldownSeconds: 0,
    });
    const hot = await sendPulse(keys, seedPulse({ siteId: "edge", ts: Date.now(), metrics: { latency: 42, errors: 0 } }));
    expect(hot.status, hot.text).toBe(200);
    const created = await eventually(async () => (await entries(keys.token, "?kind=site.created&siteId=edge")).entries[0], "site.created");
    expect(created).toMatchObject({
      kind: "site.created",
      siteId: "edge",
      target: "edge",
      actor: { type: "system", id: null, name: null },
      details: { via: "first_pulse" },
    });
    // The site made through the API is recorded once, as the token's, not again by its first pulse.
    await sendPulse(keys, seedPulse({ siteId: "api", ts: Date.now(), metrics: { latency: 900, errors: 0 } }));
    const fired = await eventually(async () => (await entries(keys.token, "?kind=rule.fired")).entries[0], "rule.fired");
    expect(fired).toMatchObject({
      kind: "rule.fired",
      siteId: "api",
      target: ruleId,
      actor: { type: "system" },
      details: { ruleId, metric: "latency", value: 900, operator: "gt", threshold: 500, tagName: "free", action: "block" },
    });
    await new Promise((r) => setTimeout(r, 600)); // the 0.5 s window forgets the spike
    await sendPulse(keys, seedPulse({ siteId: "api", ts: Date.now(), metrics: { latency: 20, errors: 0 } }));
    const cleared = await eventually(async () => (await entries(keys.token, "?kind=rule.cleared")).entries[0], "rule.cleared");
    expect(cleared).toMatchObject({ siteId: "api", target: ruleId, details: { ruleId, threshold: 500, operator: "gt" } });
    expect(cleared.details.value).toBeLessThanOrEqual(500); // the window's mean when it cleared
    const sites = (await entries(keys.token, "?kind=site.created")).entries;
    expect(sites.map((e) => [e.siteId, e.actor.type])).toEqual([
      ["edge", "system"],
      ["api", "token"],
    ]);
  });

  it("cap_exceeded once, on the transition, not on every pulse over the cap", async () => {
    const keys = await orgWithKey("Audit Cap Co", "hobby");
    // One pulse counts at most 1 % of the month (10,000 on hobby): the month starts nearly used up.
    const month = new Date().toISOString().slice(0, 7);
    await env.DB.prepare("INSERT INTO usage_monthly (org_id, month, calls, bounced) VALUES (?, ?, ?, 0)")
      .bind(keys.orgId, month, 995_000)
      .run();
    for (let i = 0; i < 3; i++) {
      const res = await sendPulse(
        keys,
        seedPulse({ siteId: "s", ts: Date.now() + i, usageDelta: 5_000, bouncedUnits: 0, tagMetrics: [{ tag: "free", count: 5_000 }] }),
      );
      expect(res.status, res.text).toBe(200);
    }
    const entry = await eventually(async () => (await entries(keys.token, "?kind=cap_exceeded")).entries[0], "cap_exceeded");
    expect(entry).toMatchObject({
      siteId: "s",
      actor: { type: "system" },
      details: { plan: "hobby", monthlyCalls: 1_000_000, usage: 1_000_000 },
    });
    await new Promise((r) => setTimeout(r, 100));
    expect((await entries(keys.token, "?kind=cap_exceeded")).entries).toHaveLength(1);
  });

  it("what a failed hand-off leaves in the aggregator's outbox, the next alarm writes (once)", async () => {
    const keys = await orgWithKey("Audit Outbox Co");
    const stub = stubFor(keys.orgId, "box");
    await sendPulse(keys, seedPulse({ siteId: "box", ts: Date.now() }));
    await eventually(async () => (await entries(keys.token, "?siteId=box")).entries[0], "site.created");
    // An entry stranded in the outbox, as a hand-off that failed would leave it.
    await runInDurableObject(stub, (_instance, state) => {
      const entry = {
        id: "aud_stranded",
        at: Date.now(),
        siteId: "box",
        actor: { type: "system", id: null, name: null },
        kind: "rule.cleared",
        target: "rule_x",
        before: null,
        after: null,
        details: null,
      };
      state.storage.sql.exec("INSERT INTO audit_outbox (body) VALUES (?)", JSON.stringify(entry));
      state.storage.sql.exec("INSERT INTO audit_outbox (body) VALUES (?)", JSON.stringify(entry)); // handed over twice: lands once
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const list = (await entries(keys.token, "?kind=rule.cleared")).entries;
    expect(list.map((e) => e.id)).toEqual(["aud_stranded"]);
    const left = await runInDurableObject(
      stub,
      (_i, state) => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM audit_outbox").one().n,
    );
    expect(left).toBe(0);
  });
});

describe("GET /v1/audit-log filters and pages", () => {
  async function seeded() {
    const { org, token } = await createOrg("Audit Filter Co");
    const rows: Array<[string, string, string | null]> = [];
    // 30 entries, 10 per kind, alternating sites, at fixed times (two share each millisecond)
    const base = 1_700_000_000_000;
    const kinds = ["rule.fired", "rule.cleared", "kill.on"];
    const stmts = [];
    for (let i = 0; i < 30; i++) {
      const kind = kinds[i % 3]!;
      const siteId = i % 2 === 0 ? "a" : "b";
      const id = `aud_${org.id}_${String(i).padStart(2, "0")}`;
      rows.push([id, kind, siteId]);
      stmts.push(
        env.DB.prepare("INSERT INTO audit_log (id, org_id, at, site_id, actor_type, kind) VALUES (?, ?, ?, ?, 'system', ?)").bind(
          id,
          org.id,
          base + Math.floor(i / 2) * 1000,
          siteId,
          kind,
        ),
      );
    }
    await env.DB.batch(stmts);
    return { org, token, base, rows };
  }

  it("kind exact and by prefix, site, time range", async () => {
    const { token, base } = await seeded();
    const fired = (await entries(token, "?kind=rule.fired&limit=200")).entries;
    expect(fired).toHaveLength(10);
    expect(fired.every((e) => e.kind === "rule.fired")).toBe(true);
    const rules = (await entries(token, "?kind=rule.*&limit=200")).entries;
    expect(rules).toHaveLength(20);
    expect(new Set(rules.map((e) => e.kind))).toEqual(new Set(["rule.fired", "rule.cleared"]));
    const siteA = (await entries(token, "?siteId=a&limit=200")).entries;
    expect(siteA).toHaveLength(15);
    expect(siteA.every((e) => e.siteId === "a")).toBe(true);
    const ranged = (await entries(token, `?from=${base + 2000}&to=${base + 4000}&limit=200`)).entries;
    expect(ranged.map((e) => e.at)).toEqual([base + 4000, base + 4000, base + 3000, base + 3000, base + 2000, base + 2000]);
    const combined = (await entries(token, `?kind=kill.*&siteId=b&from=${base}&limit=200`)).entries;
    expect(combined.every((e) => e.kind === "kill.on" && e.siteId === "b")).toBe(true);
    expect(combined).toHaveLength(5);
  });

  it("cursor pagination visits every entry once, newest first, ties broken by id", async () => {
    const { token } = await seeded();
    const seen: Entry[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: { entries: Entry[]; nextCursor: string | null } = await entries(token, `?limit=7${cursor ? `&cursor=${cursor}` : ""}`);
      expect(page.entries.length).toBeLessThanOrEqual(7);
      seen.push(...page.entries);
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== null && pages < 20);
    expect(pages).toBe(5); // 31 entries (30 seeded + org.created)
    expect(seen).toHaveLength(31);
    expect(new Set(seen.map((e) => e.id)).size).toBe(31);
    const order = seen.map((e) => [e.at, e.id] as const);
    const sorted = [...order].sort((x, y) => y[0] - x[0] || (x[1] < y[1] ? 1 : -1));
    expect(order).toEqual(sorted);
    // the cursor composes with filters
    const first = await entries(token, "?kind=rule.*&limit=15");
    const second = await entries(token, `?kind=rule.*&limit=15&cursor=${first.nextCursor}`);
    expect(first.entries).toHaveLength(15);
    expect(second.entries).toHaveLength(5);
    expect(second.nextCursor).toBeNull();
    expect(second.entries.every((e) => e.kind.startsWith("rule."))).toBe(true);
  });

  it("a prefix matches whole segments: kill.* is not killer.*", async () => {
    const { org, token } = await createOrg("Audit Segment Co");
    await env.DB.batch(
      ["kill.on", "killer.spree", "kill", "kilm.x"].map((kind, i) =>
        env.DB.prepare("INSERT INTO audit_log (id, org_id, at, actor_type, kind) VALUES (?, ?, ?, 'system', ?)").bind(
          `aud_${org.id}_seg${i}`,
          org.id,
          i,
          kind,
        ),
      ),
    );
    expect((await entries(token, "?kind=kill.*")).entries.map((e) => e.kind)).toEqual(["kill.on"]);
  });

  it("defaults to 50 entries", async () => {
    const { org, token } = await createOrg("Audit Default Co");
    await env.DB.batch(
      Array.from({ length: 60 }, (_, i) =>
        env.DB.prepare("INSERT INTO audit_log (id, org_id, at, actor_type, kind) VALUES (?, ?, ?, 'system', 'rule.fired')").bind(
          `aud_d${i}`,
          org.id,
          i,
        ),
      ),
    );
    const page = await entries(token);
    expect(page.entries).toHaveLength(50);
    expect(page.nextCursor).not.toBeNull();
  });

  it("refuses bad parameters with a typed 400", async () => {
    const { token } = await createOrg("Audit Params Co");
    for (const query of [
      "?limit=0",
      "?limit=201",
      "?limit=abc",
      "?kind=nope",
      "?kind=rule.*.*",
      "?kind=*",
      "?from=5&to=4",
      "?from=-1",
      "?cursor=!!",
      "?cursor=bm90LWpzb24",
      "?siteId=../x",
    ]) {
      expectError(await call("GET", `/v1/audit-log${query}`, { token }), 400, "VALIDATION_FAILED");
    }
    expectError(await call("GET", "/v1/audit-log"), 401, "UNAUTHORIZED");
    expectError(await call("GET", "/v1/audit-log", { token: ADMIN }), 401, "INVALID_TOKEN");
  });
});

describe("org scoping", () => {
  it("one org never sees another's entries, whatever the filter or cursor", async () => {
    const a = await createOrg("Audit Scope A");
    const b = await createOrg("Audit Scope B");
    await call("POST", "/v1/tags", { token: a.token, body: { name: "secret-tag" } });
    await call("POST", "/v1/sites", { token: a.token, body: { siteId: "shared-name" } });
    await call("POST", "/v1/sites", { token: b.token, body: { siteId: "shared-name" } });
    const seenByB = (await entries(b.token, "?limit=200")).entries;
    expect(seenByB.map((e) => e.kind).sort()).toEqual(["org.created", "site.created"]);
    expect(JSON.stringify(seenByB)).not.toContain("secret-tag");
    expect(JSON.stringify(seenByB)).not.toContain(a.org.id);
    expect((await entries(b.token, "?siteId=shared-name")).entries).toHaveLength(1);
    // A's cursor, used by B, pages through B's entries only.
    const aFirst = await entries(a.token, "?limit=1");
    const viaCursor = (await entries(b.token, `?limit=200&cursor=${aFirst.nextCursor}`)).entries;
    expect(viaCursor.every((e) => seenByB.some((s) => s.id === e.id))).toBe(true);
  });
});
