import { env } from "cloudflare:workers";
import { drizzle } from "drizzle-orm/d1";
import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { apiKeys, organizations, sites, tags } from "../src/db/schema.js";

const db = drizzle(env.DB);

/** What a failed query says underneath drizzle's "Failed query" wrapper. */
const failure = (query: Promise<unknown>) =>
  query.then(
    () => "succeeded",
    (e: unknown) => String((e as { cause?: unknown }).cause ?? e),
  );

describe("D1 schema (migrations/ applied in workerd)", () => {
  it("creates every table of the schema", async () => {
    const { results } = await env.DB.prepare(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite%' AND name != 'd1_migrations' ORDER BY name",
    ).all<{ name: string }>();
    expect(results.map((r) => r.name)).toEqual([
      "api_keys",
      "audit_log",
      "management_tokens",
      "organizations",
      "reflex_events",
      "reflex_rules",
      "rollup_flushes",
      "sites",
      "tags",
      "telemetry_rollups",
      "usage_monthly",
      "webhook_deliveries",
      "webhooks",
    ]);
  });

  it("stores an org with defaults filled by the database", async () => {
    await db.insert(organizations).values({ id: "org_a", name: "Acme", plan: "enterprise" });
    const [org] = await db.select().from(organizations).where(eq(organizations.id, "org_a"));
    expect(org).toMatchObject({ id: "org_a", name: "Acme", plan: "enterprise" });
    expect(org!.createdAt).toBeGreaterThan(1_700_000_000_000);
    await db.insert(tags).values({ id: "tag_free", orgId: "org_a", name: "free" });
    const [tag] = await db.select().from(tags).where(eq(tags.id, "tag_free"));
    expect(tag).toMatchObject({ maxWeight: 10, priority: 0, autoCreated: false });
  });

  it("refuses a duplicate publish key and a duplicate tag name in one org", async () => {
    await db.insert(organizations).values({ id: "org_b", name: "Beta", plan: "pro" });
    const key = { orgId: "org_b", name: "k", publishKey: "ws_pub_dup", secretKeyCiphertext: "x", secretKeyIv: "y" };
    await db.insert(apiKeys).values({ id: "key_1", ...key });
    expect(await failure(db.insert(apiKeys).values({ id: "key_2", ...key }))).toMatch(/UNIQUE constraint failed: api_keys.publish_key/);
    await db.insert(tags).values({ id: "t1", orgId: "org_b", name: "pro" });
    expect(await failure(db.insert(tags).values({ id: "t2", orgId: "org_b", name: "pro" }))).toMatch(
      /UNIQUE constraint failed: tags.org_id, tags.name/,
    );
  });

  it("deletes an org's data with the org", async () => {
    await db.insert(organizations).values({ id: "org_c", name: "Gamma", plan: "hobby" });
    await db.insert(sites).values({ orgId: "org_c", siteId: "site-prod" });
    await db.delete(organizations).where(eq(organizations.id, "org_c"));
    expect(await db.select().from(sites).where(eq(sites.orgId, "org_c"))).toEqual([]);
  });
});
