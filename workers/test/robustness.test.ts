/**
 * The management API under an attacker's and an unlucky operator's hands:
 * strict request bodies, 405 with `Allow` on every route, racing key
 * rotations, site deletion with usage not yet rolled up, the per-plan rule
 * cap and cursor pagination of every listing.
 */
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ErrorBodySchema } from "@waitstate/protocol";
import app from "../src/index.js";
import { REFLEX_RULE_CAPS } from "../src/routes/v1_reflex_rules.js";
import { BASE, call, createOrg, expectError } from "./helpers.js";
import { orgWithKey, seedPulse, sendPulse } from "./pulse-helpers.js";

const rule = (over: Record<string, unknown> = {}) => ({
  tagName: "free",
  metric: "error_rate",
  operator: "gt",
  threshold: 0.5,
  action: "block",
  priority: 1,
  ...over,
});

describe("strict management bodies", () => {
  it("refuses an unknown field with UNKNOWN_FIELD naming it, and creates nothing", async () => {
    const { token } = await createOrg("Strict Keys Co");
    const error = expectError(
      await call("POST", "/v1/api-keys", { token, body: { name: "live", environmnet: "live" } }),
      400,
      "UNKNOWN_FIELD",
    );
    expect(error.message).toContain("environmnet");
    expect((await call("GET", "/v1/api-keys", { token })).json.apiKeys).toEqual([]);
  });

  it("refuses a rule with a field the server does not know rather than creating it with other semantics", async () => {
    const { token } = await createOrg("Strict Rules Co");
    const error = expectError(await call("POST", "/v1/reflex-rules", { token, body: rule({ dryRun: true }) }), 400, "UNKNOWN_FIELD");
    expect(error.message).toContain("dryRun");
    expect((await call("GET", "/v1/reflex-rules", { token })).json.reflexRules).toEqual([]);
    const created = await call("POST", "/v1/reflex-rules", { token, body: rule() });
    expect(created.status, created.text).toBe(201);
    // A listed rule sent back as a patch (id and timestamps included) is still accepted; anything else unknown is not.
    const roundTrip = await call("PATCH", `/v1/reflex-rules/${created.json.id}`, { token, body: { ...created.json, threshold: 0.7 } });
    expect(roundTrip.status, roundTrip.text).toBe(200);
    expect(roundTrip.json.threshold).toBe(0.7);
    const patched = await call("PATCH", `/v1/reflex-rules/${created.json.id}`, { token, body: { threshold: 0.9, mode: "dry_run" } });
    expect(expectError(patched, 400, "UNKNOWN_FIELD").message).toContain("mode");
    expect((await call("GET", "/v1/reflex-rules", { token })).json.reflexRules[0].threshold).toBe(0.7);
  });

  it("applies to schemas the protocol shares too (site settings)", async () => {
    const { token } = await createOrg("Strict Nested Co");
    const error = expectError(
      await call("POST", "/v1/sites", { token, body: { siteId: "web", windowSeconds: 30, extra: { a: 1 } } }),
      400,
      "UNKNOWN_FIELD",
    );
    expect(error.message).toContain("extra");
  });
});

describe("405 with Allow on every route", () => {
  const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"];
  // The routes the app registered (middleware entries are "ALL"); the dashboard answers its own pages.
  const routes = new Map<string, Set<string>>();
  for (const r of app.routes) {
    if (r.method === "ALL" || r.path.startsWith("/dashboard")) continue;
    const methods = routes.get(r.path) ?? new Set<string>();
    methods.add(r.method);
    routes.set(r.path, methods);
  }

  it("knows the API's routes", () => {
    expect(routes.size).toBeGreaterThan(20);
    expect([...(routes.get("/v1/tags/:id") ?? [])].sort()).toEqual(["DELETE", "PATCH"]);
  });

  it("answers every method a route does not have with 405 METHOD_NOT_ALLOWED and the methods it has", async () => {
    for (const [path, methods] of routes) {
      const concrete = path.replace(/:[A-Za-z]+/g, "x_1");
      const allowed = [...methods, ...(methods.has("GET") ? ["HEAD"] : [])].sort();
      for (const method of METHODS.filter((m) => !methods.has(m))) {
        const res = await exports.default.fetch(`${BASE}${concrete}`, { method });
        expect(res.status, `${method} ${path}`).toBe(405);
        expect(ErrorBodySchema.parse(await res.json()).error.code).toBe("METHOD_NOT_ALLOWED");
        expect((res.headers.get("allow") ?? "").split(/,\s*/).sort(), `${method} ${path}`).toEqual(allowed);
      }
    }
  }, 60_000);

  it("still answers 404 where no route exists for any method", async () => {
    const res = await exports.default.fetch(`${BASE}/v1/nothing`, { method: "PUT" });
    expect(res.status).toBe(404);
    expect(res.headers.get("allow")).toBeNull();
  });
});

describe("key rotation races", () => {
  it("two concurrent rotations of one key: exactly one wins, every round", async () => {
    const { org, token } = await createOrg("Rotation Race Co");
    for (let round = 0; round < 10; round++) {
      const { json: key } = await call("POST", "/v1/api-keys", { token, body: { name: `round-${round}` } });
      const answers = await Promise.all([
        call("POST", `/v1/api-keys/${key.id}/rotate`, { token }),
        call("POST", `/v1/api-keys/${key.id}/rotate`, { token }),
      ]);
      expect(answers.map((a) => a.status).sort(), JSON.stringify(answers.map((a) => a.json))).toEqual([201, 409]);
      const live = await env.DB.prepare("SELECT count(*) AS n FROM api_keys WHERE org_id = ? AND name = ? AND revoked_at IS NULL")
        .bind(org.id, `round-${round}`)
        .first<{ n: number }>();
      expect(live?.n, `round ${round}`).toBe(1);
      const winner = answers.find((a) => a.status === 201)!;
      const old = await env.DB.prepare("SELECT rotated_to_id FROM api_keys WHERE id = ?").bind(key.id).first<{ rotated_to_id: string }>();
      expect(old?.rotated_to_id).toBe(winner.json.id);
    }
  }, 60_000);
});

describe("deleting a site", () => {
  it("keeps the usage its aggregator had not rolled up yet in the ledger", async () => {
    const keys = await orgWithKey("Delete Usage Co");
    for (let i = 0; i < 4; i++) {
      const res = await sendPulse(keys, seedPulse({ siteId: "web", instanceId: `web-0${i}`, usageDelta: 250, bouncedUnits: 5 }));
      expect(res.status, res.text).toBe(200);
    }
    const before = await env.DB.prepare("SELECT coalesce(sum(calls), 0) AS n FROM usage_monthly WHERE org_id = ?")
      .bind(keys.orgId)
      .first<{ n: number }>();
    expect(before?.n).toBe(0); // not rolled up yet: the minute has not ended
    const deleted = await call("DELETE", "/v1/sites/web", { token: keys.token });
    expect(deleted.status, deleted.text).toBe(200);
    const usage = await call("GET", "/v1/usage", { token: keys.token });
    expect(usage.json.usage.reduce((sum: number, m: { calls: number }) => sum + m.calls, 0)).toBe(1000);
    expect(usage.json.usage.reduce((sum: number, m: { bounced: number }) => sum + m.bounced, 0)).toBe(20);
    // The site's telemetry goes with it, as documented.
    const rollups = await env.DB.prepare("SELECT count(*) AS n FROM telemetry_rollups WHERE org_id = ? AND site_id = 'web'")
      .bind(keys.orgId)
      .first<{ n: number }>();
    expect(rollups?.n).toBe(0);
    expectError(await call("GET", "/v1/sites/web", { token: keys.token }), 404, "NOT_FOUND");
  });
});

describe("rules per plan", () => {
  it("caps an org's reflex rules by its plan, counted in the insert so racing creations cannot overshoot", async () => {
    const cap = REFLEX_RULE_CAPS.hobby;
    const { token } = await createOrg("Rule Cap Co", "hobby");
    for (let i = 0; i < cap - 1; i++) {
      const res = await call("POST", "/v1/reflex-rules", { token, body: rule({ priority: i }) });
      expect(res.status, res.text).toBe(201);
    }
    const racing = await Promise.all([0, 1, 2].map((i) => call("POST", "/v1/reflex-rules", { token, body: rule({ priority: 100 + i }) })));
    expect(racing.map((r) => r.status).sort()).toEqual([201, 403, 403]);
    const refused = racing.find((r) => r.status === 403)!;
    expect(expectError(refused, 403, "PLAN_LIMIT_REACHED").message).toContain(String(cap));
    const all = await call("GET", `/v1/reflex-rules?limit=${cap + 5}`, { token });
    expect(all.json.reflexRules).toHaveLength(cap);
    // Deleting one frees a slot.
    await call("DELETE", `/v1/reflex-rules/${all.json.reflexRules[0].id}`, { token });
    expect((await call("POST", "/v1/reflex-rules", { token, body: rule() })).status).toBe(201);
  }, 60_000);

  it("states a cap for every plan", () => {
    expect(REFLEX_RULE_CAPS).toEqual({ hobby: 10, pro: 100, enterprise: 1000 });
  });
});

describe("cursor pagination of every listing", () => {
  interface Listing {
    path: string;
    key: string;
    /** Creates `n` items in the org (beyond whatever the org starts with). */
    fill: (token: string, n: number) => Promise<void>;
  }
  const post = async (token: string, path: string, body: unknown) => {
    const res = await call("POST", path, { token, body });
    expect(res.status, res.text).toBe(201);
  };
  const LISTINGS: Listing[] = [
    {
      path: "/v1/tags",
      key: "tags",
      fill: async (t, n) => {
        for (let i = 0; i < n; i++) await post(t, "/v1/tags", { name: `tag-${String.fromCharCode(122 - i)}` });
      },
    },
    {
      path: "/v1/sites",
      key: "sites",
      fill: async (t, n) => {
        for (let i = 0; i < n; i++) await post(t, "/v1/sites", { siteId: `site-${n - i}` });
      },
    },
    {
      path: "/v1/reflex-rules",
      key: "reflexRules",
      fill: async (t, n) => {
        for (let i = 0; i < n; i++) await post(t, "/v1/reflex-rules", rule({ priority: i % 2 }));
      },
    },
    {
      path: "/v1/api-keys",
      key: "apiKeys",
      fill: async (t, n) => {
        for (let i = 0; i < n; i++) await post(t, "/v1/api-keys", { name: `k${i}` });
      },
    },
    {
      path: "/v1/webhooks",
      key: "webhooks",
      fill: async (t, n) => {
        for (let i = 0; i < n; i++) await post(t, "/v1/webhooks", { url: `https://hooks.example.test/${i}`, enabled: false });
      },
    },
    {
      path: "/v1/management-tokens",
      key: "managementTokens",
      fill: async (t, n) => {
        for (let i = 0; i < n; i++) await post(t, "/v1/management-tokens", { name: `t${i}`, role: "viewer" });
      },
    },
  ];

  it.each(LISTINGS.map((l) => [l.path, l] as const))(
    "%s pages with limit and nextCursor, in the unpaged order",
    async (_path, listing) => {
      const { token } = await createOrg(`Paging ${listing.key}`);
      await listing.fill(token, 7);
      const whole = await call("GET", `${listing.path}?limit=100`, { token });
      expect(whole.status, whole.text).toBe(200);
      expect(whole.json.nextCursor).toBeNull();
      const ids = (whole.json[listing.key] as Array<Record<string, string>>).map((item) => item.id ?? item.siteId);
      expect(ids.length).toBeGreaterThanOrEqual(7);
      const paged: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res = await call("GET", `${listing.path}?limit=3${cursor ? `&cursor=${cursor}` : ""}`, { token });
        expect(res.status, res.text).toBe(200);
        const items = res.json[listing.key] as Array<Record<string, string>>;
        expect(items.length).toBeLessThanOrEqual(3);
        paged.push(...items.map((item) => item.id ?? item.siteId!));
        cursor = res.json.nextCursor;
        pages++;
      } while (cursor !== null && pages < 20);
      expect(paged).toEqual(ids);
      expect(pages).toBe(Math.ceil(ids.length / 3));
      for (const q of ["?limit=0", "?limit=1001", "?cursor=%%%", "?cursor=e30", "?limit=x"]) {
        expectError(await call("GET", `${listing.path}${q}`, { token }), 400, "VALIDATION_FAILED");
      }
    },
    60_000,
  );

  it("answers /v1/tags at 600 tags in pages, never in one piece", async () => {
    const { org, token } = await createOrg("Many Tags Co");
    await env.DB.batch(
      Array.from({ length: 600 }, (_, i) =>
        env.DB.prepare("INSERT INTO tags (id, org_id, name) VALUES (?, ?, ?)").bind(`tag_m${i}`, org.id, `t${String(i).padStart(4, "0")}`),
      ),
    );
    const first = await call("GET", "/v1/tags", { token });
    expect(first.json.tags).toHaveLength(100);
    expect(first.json.nextCursor).toEqual(expect.any(String));
    let total = first.json.tags.length as number;
    let cursor: string | null = first.json.nextCursor;
    while (cursor !== null) {
      const page = await call("GET", `/v1/tags?limit=1000&cursor=${cursor}`, { token });
      total += page.json.tags.length;
      cursor = page.json.nextCursor;
    }
    expect(total).toBe(600);
  }, 60_000);
});
