import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { MAX_TAGS_PER_POLICY, MAX_TAGS_PER_PULSE, PLAN_LIMITS, PolicySchema, type Policy } from "@waitstate/protocol";
import { call, expectError } from "./helpers.js";
import { exchangeToken, orgWithKey, seedPulse, sendPulse, type Keys } from "./pulse-helpers.js";

/** Pulses from one instance that between them carry `names` as tags (512 a pulse at most). */
async function pulseTags(keys: Keys, siteId: string, names: string[], start = Date.now()) {
  let ts = start;
  for (let i = 0; i < names.length; i += MAX_TAGS_PER_PULSE) {
    const chunk = names.slice(i, i + MAX_TAGS_PER_PULSE);
    const res = await sendPulse(
      keys,
      seedPulse({ siteId, ts: ts++, usageDelta: chunk.length, bouncedUnits: 0, tagMetrics: chunk.map((tag) => ({ tag, count: 1 })) }),
    );
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get("x-waitstate-counted")).toBe("true");
  }
  return ts;
}

async function tagCount(orgId: string): Promise<number> {
  return (await env.DB.prepare("SELECT count(*) AS n FROM tags WHERE org_id = ?").bind(orgId).first<{ n: number }>())!.n;
}

/** What every SDK does with a policy answer: parse it with the shared schema (an SDK refuses one that fails). */
function installable(text: string): Policy {
  const parsed = PolicySchema.safeParse(JSON.parse(text));
  expect(parsed.success, parsed.success ? "" : parsed.error.message).toBe(true);
  return parsed.data!;
}

describe("tags are capped per organization by plan", () => {
  it("hobby: 100 tags; POST /v1/tags past the cap answers PLAN_LIMIT_REACHED; a pulse's new tag past it counts and is not created", async () => {
    const keys = await orgWithKey("Tag Cap Hobby", "hobby");
    expect(PLAN_LIMITS.hobby.tags).toBe(100);
    const names = Array.from({ length: 99 }, (_, i) => `t${i}`);
    await pulseTags(keys, "prod", names);
    // The 100th through the API fits; the 101st does not, whichever way it comes.
    expect((await call("POST", "/v1/tags", { token: keys.token, body: { name: "api-made" } })).status).toBe(201);
    const refused = expectError(
      await call("POST", "/v1/tags", { token: keys.token, body: { name: "one-too-many" } }),
      403,
      "PLAN_LIMIT_REACHED",
    );
    expect(refused.message).toContain("100 tags");
    // An existing name is still a conflict, not a cap.
    expectError(await call("POST", "/v1/tags", { token: keys.token, body: { name: "t0" } }), 409, "CONFLICT");
    const late = await sendPulse(
      keys,
      seedPulse({ siteId: "prod", ts: Date.now() + 1000, usageDelta: 7, bouncedUnits: 0, tagMetrics: [{ tag: "late", count: 7 }] }),
    );
    expect(late.status, late.text).toBe(200);
    expect(late.headers.get("x-waitstate-counted")).toBe("true");
    expect(await tagCount(keys.orgId)).toBe(100);
    const status = await call("GET", "/v1/sites/prod/status", { token: keys.token });
    expect(status.json.tags.late.calls).toBe(7);
  });

  it(`4,096 tags from pulses + one more from POST /v1/tags + rules + the kill switch: the published policy passes the schema and carries killSignal`, async () => {
    const keys = await orgWithKey("Tag Cap Enterprise");
    expect(PLAN_LIMITS.enterprise.tags).toBe(MAX_TAGS_PER_POLICY);
    const names = Array.from({ length: MAX_TAGS_PER_POLICY }, (_, i) => `tag-${String(i).padStart(4, "0")}`);
    let ts = await pulseTags(keys, "prod", names);
    expect(await tagCount(keys.orgId)).toBe(MAX_TAGS_PER_POLICY);
    expectError(await call("POST", "/v1/tags", { token: keys.token, body: { name: "tag-4096" } }), 403, "PLAN_LIMIT_REACHED");
    // Two tiers and uneven baselines, so triage writes an entry per tag that differs from the global limit,
    // and a rule on a tag the cap kept out: 4,097 entries before the fold.
    await env.DB.prepare("UPDATE tags SET priority = 1, max_weight = 20 WHERE org_id = ? AND name >= 'tag-2048'").bind(keys.orgId).run();
    await env.DB.prepare("UPDATE tags SET max_weight = 5 WHERE org_id = ? AND name < 'tag-2048'").bind(keys.orgId).run();
    const all = await call("POST", "/v1/reflex-rules", {
      token: keys.token,
      body: { tagName: null, metric: "latency", operator: "gt", threshold: 100, action: "throttle", actionValue: 0.5, priority: 1 },
    });
    expect(all.status, all.text).toBe(201);
    const ghost = await call("POST", "/v1/reflex-rules", {
      token: keys.token,
      body: { tagName: "ghost", metric: "latency", operator: "gt", threshold: 100, action: "block", priority: 2 },
    });
    expect(ghost.status, ghost.text).toBe(201);
    const kill = await call("POST", "/v1/sites/prod/kill", { token: keys.token, body: { enabled: true } });
    expect(kill.status, kill.text).toBe(200);

    const hot = await sendPulse(keys, seedPulse({ siteId: "prod", ts: ts++, metrics: { latency: 900, errors: 0 }, tagMetrics: [] }));
    expect(hot.status, hot.text).toBe(200);
    const policy = installable(hot.text);
    expect(policy.killSignal).toBe(true);
    expect(policy.globalMaxWeight).toBe(5);
    expect(Object.keys(policy.tagMaxWeights).length).toBeLessThanOrEqual(MAX_TAGS_PER_POLICY);
    // The fold keeps the strictest entries: the ghost block and the shed lowest tier; the exempt tier follows the global limit.
    expect(policy.tagMaxWeights.ghost).toBe(0);
    expect(policy.tagMaxWeights["tag-0000"]).toBe(2.5);
    // The policy read (KV) serves the same, installable policy.
    const { json: token } = await exchangeToken(keys);
    const read = await call("GET", `/v1/policy/${keys.orgId}?siteId=prod`, { token: token.token });
    expect(installable(read.text)).toMatchObject({ killSignal: true, version: policy.version });
    // And the fold is on record (from when the rules first made the policy too large).
    let audit = await call("GET", "/v1/audit-log?kind=policy.folded", { token: keys.token });
    for (let i = 0; i < 100 && audit.json.entries?.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 25));
      audit = await call("GET", "/v1/audit-log?kind=policy.folded", { token: keys.token });
    }
    expect(audit.json.entries[0]).toMatchObject({
      kind: "policy.folded",
      siteId: "prod",
      actor: { type: "system" },
      details: { entriesFolded: 1 },
    });
  }, 60_000);
});
