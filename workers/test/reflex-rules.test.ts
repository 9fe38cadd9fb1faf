import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { policyKey, type CachedPolicy } from "@waitstate/durable-objects";
import { call, createOrg, expectError } from "./helpers.js";

/** The documented example: block search traffic when queue depth exceeds 100. */
const documentedExample = {
  tagName: "search",
  metric: "queue_depth",
  operator: "gt",
  threshold: 100,
  action: "block",
  actionValue: null,
  enabled: true,
  priority: 1,
};
const blockFree = { tagName: "free", metric: "p95_latency", operator: "gt", threshold: 500, action: "block", priority: 10 };

/** A rule on `metric` that reads `metricTag`; built-in or custom. */
const ruleOn = (metric: string, metricTag: string | null = null) => ({
  tagName: "free",
  metric,
  metricTag,
  operator: "gt",
  threshold: 1,
  action: "block",
  priority: 1,
});

async function post(token: string, body: unknown) {
  return call("POST", "/v1/reflex-rules", { token, body });
}

async function listRules(token: string, query = "") {
  const res = await call("GET", `/v1/reflex-rules${query}`, { token });
  expect(res.status).toBe(200);
  return res.json.reflexRules as Array<Record<string, any>>;
}

describe("reflex rules: create, list, update, delete", () => {
  it("creates a rule with defaults and answers in the posted shape", async () => {
    const { token } = await createOrg();
    const created = await post(token, blockFree);
    expect(created.status, created.text).toBe(201);
    expect(created.json).toEqual({
      id: expect.stringMatching(/^rule_[A-Za-z0-9_-]{16}$/),
      siteId: null,
      tagName: "free",
      metric: "p95_latency",
      metricTag: null,
      operator: "gt",
      threshold: 500,
      action: "block",
      actionValue: null,
      enabled: true,
      priority: 10,
      cooldownSeconds: 30,
      createdAt: expect.any(Number),
      updatedAt: null,
    });
    expect(await listRules(token)).toEqual([created.json]);
  });

  it("takes the documented example as written, actionValue null included", async () => {
    const { token } = await createOrg();
    const created = await post(token, documentedExample);
    expect(created.status, created.text).toBe(201);
    expect(created.json).toMatchObject(documentedExample);
  });

  it("stores a site-scoped throttle rule and filters the list by siteId", async () => {
    const { token } = await createOrg();
    const throttle = {
      ...blockFree,
      siteId: "web-prod",
      metricTag: "free",
      action: "throttle",
      actionValue: 0.5,
      cooldownSeconds: 0,
      enabled: false,
    };
    const created = await post(token, throttle);
    expect(created.status, created.text).toBe(201);
    expect(created.json).toMatchObject(throttle);
    const orgWide = await post(token, { ...blockFree, priority: 1 });
    // Lower priority first (the order the engine applies them).
    expect((await listRules(token)).map((r) => r.id)).toEqual([orgWide.json.id, created.json.id]);
    expect((await listRules(token, "?siteId=web-prod")).map((r) => r.id)).toEqual([created.json.id]);
    expect(await listRules(token, "?siteId=other")).toEqual([]);
    expectError(await call("GET", "/v1/reflex-rules?siteId=bad%20id", { token }), 400, "VALIDATION_FAILED");
  });

  it("updates a rule partially and stamps updatedAt", async () => {
    const { token } = await createOrg();
    const { json: rule } = await post(token, blockFree);
    const patched = await call("PATCH", `/v1/reflex-rules/${rule.id}`, { token, body: { threshold: 800, enabled: false } });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.json).toMatchObject({
      ...blockFree,
      id: rule.id,
      threshold: 800,
      enabled: false,
      cooldownSeconds: 30,
      createdAt: rule.createdAt,
    });
    expect(patched.json.updatedAt).toBeGreaterThanOrEqual(rule.createdAt - 1);
    const toThrottle = await call("PATCH", `/v1/reflex-rules/${rule.id}`, {
      token,
      body: { action: "throttle", actionValue: 0.25, siteId: "web" },
    });
    expect(toThrottle.json).toMatchObject({ action: "throttle", actionValue: 0.25, siteId: "web", threshold: 800, enabled: false });
    expect(await listRules(token)).toEqual([toThrottle.json]);
  });

  it("takes a rule read with GET back as a PATCH body", async () => {
    const { token } = await createOrg();
    const { json: rule } = await post(token, blockFree);
    const edited = await call("PATCH", `/v1/reflex-rules/${rule.id}`, { token, body: { ...rule, threshold: 250 } });
    expect(edited.status, edited.text).toBe(200);
    expect(edited.json).toMatchObject({ id: rule.id, threshold: 250, actionValue: null });
  });

  it("deletes a rule and answers with what it was", async () => {
    const { token } = await createOrg();
    const { json: rule } = await post(token, blockFree);
    const deleted = await call("DELETE", `/v1/reflex-rules/${rule.id}`, { token });
    expect(deleted.status).toBe(200);
    expect(deleted.json).toEqual(rule);
    expect(await listRules(token)).toEqual([]);
    expectError(await call("DELETE", `/v1/reflex-rules/${rule.id}`, { token }), 404, "NOT_FOUND");
  });

  it("tells the site's aggregator at once: a new rule, its update and its deletion reach the policy", async () => {
    const { org, token } = await createOrg();
    await env.DB.prepare("INSERT INTO sites (org_id, site_id) VALUES (?, 'web')").bind(org.id).run();
    // Setting the kill switch (off) makes the aggregator adopt the site and publish a first policy.
    await call("POST", "/v1/sites/web/kill", { token, body: { enabled: false } });
    const policy = async () => (await env.POLICIES.get<CachedPolicy>(policyKey(org.id, "web"), "json"))!.policy;
    expect((await policy()).tagMaxWeights).toEqual({});

    // Built-in metrics read 0 without telemetry, so "errors >= 0" matches at once.
    const { json: rule } = await post(token, {
      tagName: "free",
      metric: "errors",
      operator: "gte",
      threshold: 0,
      action: "throttle",
      actionValue: 0.5,
      priority: 1,
    });
    expect((await policy()).tagMaxWeights).toEqual({ free: 5 });
    await call("PATCH", `/v1/reflex-rules/${rule.id}`, { token, body: { action: "block" } });
    expect((await policy()).tagMaxWeights).toEqual({ free: 0 });
    // Moving the rule to another site reloads the site it left, and that site's rule stops applying (after its cooldown: none here).
    await call("PATCH", `/v1/reflex-rules/${rule.id}`, { token, body: { cooldownSeconds: 0 } });
    await call("PATCH", `/v1/reflex-rules/${rule.id}`, { token, body: { siteId: "api" } });
    expect((await policy()).tagMaxWeights).toEqual({});
    await call("PATCH", `/v1/reflex-rules/${rule.id}`, { token, body: { siteId: null } });
    expect((await policy()).tagMaxWeights).toEqual({ free: 0 });
    await call("DELETE", `/v1/reflex-rules/${rule.id}`, { token });
    expect((await policy()).tagMaxWeights).toEqual({});
  });
});

describe("reflex rules: validation", () => {
  it.each([
    ["no metric", { ...blockFree, metric: undefined }, "metric"],
    ["an unknown operator", { ...blockFree, operator: "eq" }, "operator"],
    ["an unknown action", { ...blockFree, action: "drop" }, "action"],
    ["a throttle without actionValue", { ...blockFree, action: "throttle" }, "actionValue"],
    ["an actionValue above 1", { ...blockFree, action: "throttle", actionValue: 2 }, "actionValue"],
    ["a metric name with capitals", { ...blockFree, metric: "QueueDepth" }, "metric"],
    ["a negative priority", { ...blockFree, priority: -1 }, "priority"],
    ["a string threshold", { ...blockFree, threshold: "500" }, "threshold"],
    ["an empty tagName", { ...blockFree, tagName: "" }, "tagName"],
    ["a siteId with spaces", { ...blockFree, siteId: "web prod" }, "siteId"],
    ["a client-chosen id", { ...blockFree, id: "rule_mine" }, "id"],
  ])("refuses %s: 400 VALIDATION_FAILED naming the field", async (_case, body, field) => {
    const { token } = await createOrg();
    const error = expectError(await post(token, body), 400, "VALIDATION_FAILED");
    // parseWith's message: "path: why", issues joined by "; ".
    expect(error.message).toMatch(new RegExp(`(^|; )${field}: `));
    expect(await listRules(token)).toEqual([]);
  });

  it("refuses a PATCH that breaks the merged rule, or changes nothing", async () => {
    const { token } = await createOrg();
    const { json: rule } = await post(token, blockFree);
    const throttle = expectError(
      await call("PATCH", `/v1/reflex-rules/${rule.id}`, { token, body: { action: "throttle" } }),
      400,
      "VALIDATION_FAILED",
    );
    expect(throttle.message).toMatch(/^actionValue: /);
    expectError(await call("PATCH", `/v1/reflex-rules/${rule.id}`, { token, body: { threshold: null } }), 400, "VALIDATION_FAILED");
    expectError(await call("PATCH", `/v1/reflex-rules/${rule.id}`, { token, body: {} }), 400, "VALIDATION_FAILED");
    expect(
      expectError(await call("PATCH", `/v1/reflex-rules/${rule.id}`, { token, body: { treshold: 1 } }), 400, "UNKNOWN_FIELD").message,
    ).toContain("treshold");
    expectError(await call("PATCH", `/v1/reflex-rules/${rule.id}`, { token, body: [1] }), 400, "VALIDATION_FAILED");
    expectError(await call("PATCH", `/v1/reflex-rules/${rule.id}`, { token, rawBody: "{" }), 400, "INVALID_JSON");
    expect(await listRules(token)).toEqual([rule]);
  });
});

describe("reflex rules: custom metrics by plan", () => {
  it("refuses any custom metric on hobby, built-ins are fine", async () => {
    const { token } = await createOrg("Hobbyist", "hobby");
    const error = expectError(await post(token, documentedExample), 403, "PLAN_LIMIT_REACHED");
    expect(error.message).toContain("hobby");
    expect(await listRules(token)).toEqual([]);
    const { json: rule } = await post(token, blockFree);
    expect(rule.metric).toBe("p95_latency");
    expectError(await call("PATCH", `/v1/reflex-rules/${rule.id}`, { token, body: { metric: "queue_depth" } }), 403, "PLAN_LIMIT_REACHED");
    expect((await listRules(token)).map((r) => r.metric)).toEqual(["p95_latency"]);
  });

  it("allows 5 distinct custom metrics per metricTag on pro, counting site-wide (null) as its own", async () => {
    const { token } = await createOrg("Team", "pro");
    for (const metric of ["m1", "m2", "m3", "m4", "m5"]) expect((await post(token, ruleOn(metric))).status).toBe(201);
    // The same name again, a built-in, or another metricTag do not add to the site-wide set.
    expect((await post(token, { ...ruleOn("m3"), priority: 2 })).status).toBe(201);
    expect((await post(token, ruleOn("errors"))).status).toBe(201);
    expect((await post(token, ruleOn("m6", "search"))).status).toBe(201);
    const error = expectError(await post(token, ruleOn("m6")), 403, "PLAN_LIMIT_REACHED");
    expect(error.message).toContain("m1, m2, m3, m4, m5");
    expect(await listRules(token)).toHaveLength(8);

    // The cap also guards a PATCH that changes the metric or its tag.
    const { json: search } = await post(token, ruleOn("errors", "search"));
    const other = (await listRules(token)).find((r) => r.metric === "m6")!;
    expectError(await call("PATCH", `/v1/reflex-rules/${other.id}`, { token, body: { metricTag: null } }), 403, "PLAN_LIMIT_REACHED");
    expect((await call("PATCH", `/v1/reflex-rules/${search.id}`, { token, body: { metric: "m7" } })).status).toBe(200);
  });

  it("lets a rule swap its own custom metric at the cap, and frees a slot on delete", async () => {
    const { token } = await createOrg("Team", "pro");
    const ids: string[] = [];
    for (const metric of ["m1", "m2", "m3", "m4", "m5"]) ids.push((await post(token, ruleOn(metric))).json.id);
    const swapped = await call("PATCH", `/v1/reflex-rules/${ids[0]}`, { token, body: { metric: "m9" } });
    expect(swapped.status, swapped.text).toBe(200);
    expect(swapped.json.metric).toBe("m9");
    expectError(await post(token, ruleOn("m1")), 403, "PLAN_LIMIT_REACHED");
    await call("DELETE", `/v1/reflex-rules/${ids[1]}`, { token });
    expect((await post(token, ruleOn("m1"))).status).toBe(201);
  });

  it("still lets an org over its cap (after a downgrade) edit and disable its rules", async () => {
    const { org, token } = await createOrg("Team", "pro");
    const { json: rule } = await post(token, ruleOn("m1"));
    await env.DB.prepare("UPDATE organizations SET plan = 'hobby' WHERE id = ?").bind(org.id).run();
    const disabled = await call("PATCH", `/v1/reflex-rules/${rule.id}`, { token, body: { enabled: false, threshold: 3 } });
    expect(disabled.status, disabled.text).toBe(200);
    expect(disabled.json).toMatchObject({ metric: "m1", enabled: false, threshold: 3 });
    expectError(await post(token, ruleOn("m1")), 403, "PLAN_LIMIT_REACHED");
  });

  it("has no cap on enterprise", async () => {
    const { token } = await createOrg("Corp", "enterprise");
    for (let i = 1; i <= 7; i++) expect((await post(token, ruleOn(`m${i}`))).status).toBe(201);
    expect(await listRules(token)).toHaveLength(7);
  });
});

describe("reflex rules: auth and tenancy", () => {
  it("needs a management token", async () => {
    const { token } = await createOrg();
    const { json: rule } = await post(token, blockFree);
    expectError(await call("GET", "/v1/reflex-rules"), 401, "UNAUTHORIZED");
    expectError(await call("POST", "/v1/reflex-rules", { body: blockFree }), 401, "UNAUTHORIZED");
    expectError(await call("PATCH", `/v1/reflex-rules/${rule.id}`, { body: { threshold: 1 } }), 401, "UNAUTHORIZED");
    expectError(await call("DELETE", `/v1/reflex-rules/${rule.id}`), 401, "UNAUTHORIZED");
    expectError(await call("GET", "/v1/reflex-rules", { token: "ws_mgmt_nope" }), 401, "INVALID_TOKEN");
  });

  it("keeps one org out of another's rules: 404, exactly like an unknown id", async () => {
    const a = await createOrg("A");
    const b = await createOrg("B");
    const { json: rule } = await post(a.token, { ...blockFree, siteId: "web" });
    expect(await listRules(b.token)).toEqual([]);
    expect(await listRules(b.token, "?siteId=web")).toEqual([]);
    expectError(await call("PATCH", `/v1/reflex-rules/${rule.id}`, { token: b.token, body: { threshold: 1 } }), 404, "NOT_FOUND");
    expectError(await call("DELETE", `/v1/reflex-rules/${rule.id}`, { token: b.token }), 404, "NOT_FOUND");
    expectError(await call("PATCH", "/v1/reflex-rules/rule_doesnotexist", { token: a.token, body: { threshold: 1 } }), 404, "NOT_FOUND");
    expectError(await call("DELETE", "/v1/reflex-rules/'; DROP TABLE reflex_rules;--", { token: a.token }), 404, "NOT_FOUND");
    expect(await listRules(a.token)).toEqual([rule]);
  });
});
