import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { policyKey, type CachedPolicy } from "@waitstate/durable-objects";
import { call, createOrg, expectError } from "./helpers.js";

describe("tags", () => {
  it("creates a tag with defaults, lists it with auto-created ones, by name", async () => {
    const { org, token } = await createOrg();
    const created = await call("POST", "/v1/tags", { token, body: { name: "free" } });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ name: "free", maxWeight: 10, priority: 0, autoCreated: false });
    expect(created.json.id).toMatch(/^tag_[A-Za-z0-9_-]{16}$/);
    expect(created.json.createdAt).toBeGreaterThan(1_700_000_000_000);

    // What the aggregator writes for a tag it first sees in a pulse.
    await env.DB.prepare("INSERT INTO tags (id, org_id, name, auto_created) VALUES ('tag_0123456789abcdef', ?, 'checkout', 1)")
      .bind(org.id)
      .run();
    const pro = await call("POST", "/v1/tags", { token, body: { name: "pro", maxWeight: 2.5, priority: 7 } });
    expect(pro.json).toMatchObject({ name: "pro", maxWeight: 2.5, priority: 7 });

    const list = await call("GET", "/v1/tags", { token });
    expect(list.status).toBe(200);
    expect(list.json.tags.map((t: { name: string; autoCreated: boolean }) => [t.name, t.autoCreated])).toEqual([
      ["checkout", true],
      ["free", false],
      ["pro", false],
    ]);
  });

  it("refuses a duplicate name with 409, naming the tag to PATCH", async () => {
    const { token } = await createOrg();
    const first = await call("POST", "/v1/tags", { token, body: { name: "free" } });
    const error = expectError(await call("POST", "/v1/tags", { token, body: { name: "free", maxWeight: 1 } }), 409, "CONFLICT");
    expect(error.message).toContain(first.json.id);
    const list = await call("GET", "/v1/tags", { token });
    expect(list.json.tags).toHaveLength(1);
    expect(list.json.tags[0].maxWeight).toBe(10);
  });

  it("lets two orgs use the same tag name", async () => {
    const a = await createOrg("A");
    const b = await createOrg("B");
    expect((await call("POST", "/v1/tags", { token: a.token, body: { name: "free" } })).status).toBe(201);
    expect((await call("POST", "/v1/tags", { token: b.token, body: { name: "free" } })).status).toBe(201);
  });

  it("updates maxWeight and priority, one or both", async () => {
    const { token } = await createOrg();
    const { json: tag } = await call("POST", "/v1/tags", { token, body: { name: "free", maxWeight: 4, priority: 1 } });
    const weight = await call("PATCH", `/v1/tags/${tag.id}`, { token, body: { maxWeight: 0.5 } });
    expect(weight.status).toBe(200);
    expect(weight.json).toMatchObject({ id: tag.id, name: "free", maxWeight: 0.5, priority: 1 });
    const both = await call("PATCH", `/v1/tags/${tag.id}`, { token, body: { maxWeight: 0, priority: -3 } });
    expect(both.json).toMatchObject({ maxWeight: 0, priority: -3 });
    const row = await env.DB.prepare("SELECT max_weight, priority FROM tags WHERE id = ?").bind(tag.id).first();
    expect(row).toEqual({ max_weight: 0, priority: -3 });
  });

  it("deletes a tag and answers with what it was", async () => {
    const { token } = await createOrg();
    const { json: tag } = await call("POST", "/v1/tags", { token, body: { name: "free", maxWeight: 3 } });
    const deleted = await call("DELETE", `/v1/tags/${tag.id}`, { token });
    expect(deleted.status).toBe(200);
    expect(deleted.json).toMatchObject({ id: tag.id, name: "free", maxWeight: 3 });
    expect((await call("GET", "/v1/tags", { token })).json.tags).toEqual([]);
    expectError(await call("DELETE", `/v1/tags/${tag.id}`, { token }), 404, "NOT_FOUND");
    // The name is free again.
    expect((await call("POST", "/v1/tags", { token, body: { name: "free" } })).status).toBe(201);
  });

  it("tells the org's aggregators at once: a throttle follows the tag's baseline", async () => {
    const { org, token } = await createOrg();
    await env.DB.prepare("INSERT INTO sites (org_id, site_id) VALUES (?, 'web')").bind(org.id).run();
    // Built-in metrics read 0 without telemetry, so this throttle (×0.5) applies at once.
    await env.DB.prepare(
      "INSERT INTO reflex_rules (id, org_id, tag_name, metric, operator, threshold, action, action_value, priority) VALUES ('rule_t', ?, 'free', 'errors', 'gte', 0, 'throttle', 0.5, 1)",
    )
      .bind(org.id)
      .run();
    const adopted = await call("POST", "/v1/sites/web/kill", { token, body: { enabled: false } });
    expect(adopted.json.policy.tagMaxWeights).toEqual({ free: 5 });
    const policy = async () => (await env.POLICIES.get<CachedPolicy>(policyKey(org.id, "web"), "json"))!.policy;

    const { json: tag } = await call("POST", "/v1/tags", { token, body: { name: "free", maxWeight: 8 } });
    expect((await policy()).tagMaxWeights).toEqual({ free: 4 });
    await call("PATCH", `/v1/tags/${tag.id}`, { token, body: { maxWeight: 3 } });
    expect((await policy()).tagMaxWeights).toEqual({ free: 1.5 });
    await call("DELETE", `/v1/tags/${tag.id}`, { token });
    expect((await policy()).tagMaxWeights).toEqual({ free: 5 });
  });

  it.each([
    ["no name", {}],
    ["an empty name", { name: "" }],
    ["a name over 128 characters", { name: "x".repeat(129) }],
    ["a negative maxWeight", { name: "free", maxWeight: -1 }],
    ["a string maxWeight", { name: "free", maxWeight: "10" }],
    ["a fractional priority", { name: "free", priority: 1.5 }],
  ])("refuses a tag with %s: 400 VALIDATION_FAILED", async (_case, body) => {
    const { token } = await createOrg();
    expectError(await call("POST", "/v1/tags", { token, body }), 400, "VALIDATION_FAILED");
    expect((await call("GET", "/v1/tags", { token })).json.tags).toEqual([]);
  });

  it("refuses an empty or invalid PATCH and keeps the tag as it was", async () => {
    const { token } = await createOrg();
    const { json: tag } = await call("POST", "/v1/tags", { token, body: { name: "free", maxWeight: 4 } });
    const empty = expectError(await call("PATCH", `/v1/tags/${tag.id}`, { token, body: {} }), 400, "VALIDATION_FAILED");
    expect(empty.message).toContain("maxWeight");
    expectError(await call("PATCH", `/v1/tags/${tag.id}`, { token, body: { maxWeight: -2 } }), 400, "VALIDATION_FAILED");
    expectError(await call("PATCH", `/v1/tags/${tag.id}`, { token, rawBody: "{" }), 400, "INVALID_JSON");
    expectError(
      await call("PATCH", `/v1/tags/${tag.id}`, { token, rawBody: "{}", contentType: "text/plain" }),
      415,
      "UNSUPPORTED_MEDIA_TYPE",
    );
    expect((await call("GET", "/v1/tags", { token })).json.tags[0].maxWeight).toBe(4);
  });

  it("needs a management token", async () => {
    const { token } = await createOrg();
    const { json: tag } = await call("POST", "/v1/tags", { token, body: { name: "free" } });
    expectError(await call("GET", "/v1/tags"), 401, "UNAUTHORIZED");
    expectError(await call("POST", "/v1/tags", { body: { name: "x" } }), 401, "UNAUTHORIZED");
    expectError(await call("PATCH", `/v1/tags/${tag.id}`, { body: { priority: 1 } }), 401, "UNAUTHORIZED");
    expectError(await call("DELETE", `/v1/tags/${tag.id}`), 401, "UNAUTHORIZED");
    expectError(await call("GET", "/v1/tags", { token: "ws_mgmt_nope" }), 401, "INVALID_TOKEN");
  });

  it("keeps one org out of another's tags: 404, exactly like an unknown id", async () => {
    const a = await createOrg("A");
    const b = await createOrg("B");
    const { json: tag } = await call("POST", "/v1/tags", { token: a.token, body: { name: "free", maxWeight: 4 } });
    expectError(await call("PATCH", `/v1/tags/${tag.id}`, { token: b.token, body: { maxWeight: 0 } }), 404, "NOT_FOUND");
    expectError(await call("DELETE", `/v1/tags/${tag.id}`, { token: b.token }), 404, "NOT_FOUND");
    expect((await call("GET", "/v1/tags", { token: b.token })).json.tags).toEqual([]);
    expect((await call("GET", "/v1/tags", { token: a.token })).json.tags[0]).toMatchObject({ id: tag.id, maxWeight: 4 });
    expectError(await call("PATCH", "/v1/tags/tag_doesnotexist", { token: a.token, body: { maxWeight: 0 } }), 404, "NOT_FOUND");
    expectError(await call("DELETE", "/v1/tags/'; DROP TABLE tags;--", { token: a.token }), 404, "NOT_FOUND");
  });
});
