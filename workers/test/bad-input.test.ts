/**
 * The bad-input sweep: every endpoint, fed malformed JSON, wrong types,
 * missing and oversized fields, garbage ids and query strings, answers a 4xx
 * with a typed error body, never a 500.
 */
import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { ErrorBodySchema } from "@waitstate/protocol";
import { ADMIN, call } from "./helpers.js";
import { exchangeToken, jwtFor, orgWithKey, seedPulse, sendPulse, type Keys } from "./pulse-helpers.js";

type Auth = "admin" | "management" | "jwt" | "none";
interface Endpoint {
  method: string;
  path: string;
  auth: Auth;
  /** Whether the endpoint reads a JSON body. */
  body: boolean;
}

const ENDPOINTS: Endpoint[] = [
  { method: "POST", path: "/v1/organizations", auth: "admin", body: true },
  { method: "GET", path: "/v1/organizations", auth: "management", body: false },
  { method: "GET", path: "/v1/admin/organizations/{org}", auth: "admin", body: false },
  { method: "GET", path: "/v1/admin/organizations/{bad}", auth: "admin", body: false },
  { method: "PATCH", path: "/v1/admin/organizations/{org}", auth: "admin", body: true },
  { method: "PATCH", path: "/v1/admin/organizations/{bad}", auth: "admin", body: true },
  { method: "GET", path: "/v1/management-tokens", auth: "management", body: false },
  { method: "POST", path: "/v1/management-tokens", auth: "management", body: true },
  { method: "DELETE", path: "/v1/management-tokens/{bad}", auth: "management", body: false },
  { method: "POST", path: "/v1/auth/token", auth: "none", body: true },
  { method: "GET", path: "/v1/policy/{org}", auth: "jwt", body: false },
  { method: "GET", path: "/v1/api-keys", auth: "management", body: false },
  { method: "POST", path: "/v1/api-keys", auth: "management", body: true },
  { method: "DELETE", path: "/v1/api-keys/{bad}", auth: "management", body: false },
  { method: "POST", path: "/v1/api-keys/{bad}/rotate", auth: "management", body: true },
  { method: "POST", path: "/v1/api-keys/{key}/rotate", auth: "management", body: true },
  { method: "GET", path: "/v1/tags", auth: "management", body: false },
  { method: "POST", path: "/v1/tags", auth: "management", body: true },
  { method: "PATCH", path: "/v1/tags/{bad}", auth: "management", body: true },
  { method: "DELETE", path: "/v1/tags/{bad}", auth: "management", body: false },
  { method: "GET", path: "/v1/sites", auth: "management", body: false },
  { method: "POST", path: "/v1/sites", auth: "management", body: true },
  { method: "GET", path: "/v1/sites/{site}", auth: "management", body: false },
  { method: "PATCH", path: "/v1/sites/{site}", auth: "management", body: true },
  { method: "GET", path: "/v1/sites/{site}/status", auth: "management", body: false },
  { method: "GET", path: "/v1/management-tokens", auth: "management", body: false },
  { method: "POST", path: "/v1/management-tokens", auth: "management", body: true },
  { method: "DELETE", path: "/v1/management-tokens/{bad}", auth: "management", body: false },
  { method: "DELETE", path: "/v1/sites/{bad}", auth: "management", body: false },
  { method: "POST", path: "/v1/sites/{site}/kill", auth: "management", body: true },
  { method: "GET", path: "/v1/reflex-rules", auth: "management", body: false },
  { method: "POST", path: "/v1/reflex-rules", auth: "management", body: true },
  { method: "PATCH", path: "/v1/reflex-rules/{bad}", auth: "management", body: true },
  { method: "DELETE", path: "/v1/reflex-rules/{bad}", auth: "management", body: false },
  { method: "GET", path: "/v1/usage", auth: "management", body: false },
  { method: "GET", path: "/v1/telemetry", auth: "management", body: false },
  { method: "GET", path: "/v1/reflex-events", auth: "management", body: false },
  { method: "GET", path: "/v1/audit-log", auth: "management", body: false },
  { method: "GET", path: "/v1/webhooks", auth: "management", body: false },
  { method: "POST", path: "/v1/webhooks", auth: "management", body: true },
  { method: "GET", path: "/v1/webhooks/{bad}", auth: "management", body: false },
  { method: "PATCH", path: "/v1/webhooks/{bad}", auth: "management", body: true },
  { method: "PATCH", path: "/v1/webhooks/{hook}", auth: "management", body: true },
  { method: "DELETE", path: "/v1/webhooks/{bad}", auth: "management", body: false },
  { method: "GET", path: "/v1/webhooks/{bad}/deliveries", auth: "management", body: false },
  { method: "GET", path: "/v1/webhooks/{hook}/deliveries", auth: "management", body: false },
];

/** [what, body, always refused]: some bodies (`{}`, extra keys) are valid for endpoints whose fields all have defaults. */
const BAD_BODIES: Array<[string, string, boolean]> = [
  ["malformed JSON", '{"name": ', true],
  ["a JSON array", "[]", true],
  ["JSON null", "null", true],
  ["a bare string", '"hello"', true],
  [
    "wrong types",
    JSON.stringify({
      name: 42,
      plan: 7,
      suspended: "yes",
      role: 3,
      siteIds: "prod",
      maxWeight: "ten",
      priority: "high",
      enabled: "yes",
      metric: 5,
      threshold: "x",
      tagName: 3,
      publishKey: 1,
      secretKey: [],
      environment: "prod",
      siteId: "../x",
      gracePeriodSeconds: "1h",
    }),
    true,
  ],
  [
    "oversized fields",
    JSON.stringify({
      name: "x".repeat(5000),
      tagName: "t".repeat(5000),
      metric: "m".repeat(5000),
      publishKey: "p".repeat(5000),
      enabled: true,
    }),
    true,
  ],
  ["an oversized body", JSON.stringify({ name: "x".repeat(70_000) }), true],
  ["missing fields", "{}", false],
  [
    "numbers out of range",
    JSON.stringify({
      name: "n",
      maxWeight: -1,
      priority: 1e308,
      // biome-ignore lint/correctness/noPrecisionLoss: a number no JSON parser keeps exactly, on purpose
      threshold: 1e309,
      cooldownSeconds: -5,
      actionValue: 7,
      gracePeriodSeconds: 1e9,
      environment: 1,
    }),
    false,
  ],
  ["a prototype key", '{"__proto__": {"admin": true}, "name": "proto"}', false],
  [
    "a field no endpoint knows",
    JSON.stringify({ name: "n", siteId: "s", url: "https://hooks.example.test/x", enabled: true, zzUnknownField: 1 }),
    true,
  ],
  ["a webhook URL on a private address", JSON.stringify({ url: "http://127.1:1/" }), true],
];

const BAD_QUERIES = [
  "?siteId=../../x",
  "?month=2026-13",
  "?from=abc&to=-1",
  "?limit=-5",
  "?limit=1e9",
  `?tag=${"t".repeat(500)}`,
  "?siteId=%00",
  "?kind=rule.%00",
  `?kind=${"k".repeat(200)}`,
  "?cursor=%00",
  `?cursor=${"A".repeat(600)}`,
  "?cursor=eyJhdCI6LTF9",
  "?cursor=bm90LWpzb24",
  "?cursor=A",
  "?from=99999999999999999999",
];

let keys: Keys;
let jwt: string;
let hookId: string;
let spareKeyId: string;
const tokenFor = (auth: Auth) => (auth === "admin" ? ADMIN : auth === "management" ? keys.token : auth === "jwt" ? jwt : undefined);
const fill = (p: string) =>
  p
    .replace("{org}", keys.orgId)
    .replace("{bad}", "nope%20%00")
    .replace("{site}", "prod")
    .replace("{hook}", hookId)
    .replace("{key}", spareKeyId);

function expectTyped(res: { status: number; json: unknown; text: string }, what: string) {
  expect(res.status, `${what}: ${res.text}`).toBeGreaterThanOrEqual(400);
  expect(res.status, `${what}: ${res.text}`).toBeLessThan(500);
  expect(ErrorBodySchema.safeParse(res.json).success, `${what}: ${res.text}`).toBe(true);
}

describe("bad-input sweep: every endpoint answers 4xx with a code, never 500", () => {
  beforeAll(async () => {
    keys = await orgWithKey("Sweep Co");
    expect((await sendPulse(keys, seedPulse({ siteId: "prod" }))).status).toBe(200);
    jwt = await jwtFor(keys);
    const spare = await call("POST", "/v1/api-keys", { token: keys.token, body: { name: "spare" } });
    expect(spare.status, spare.text).toBe(201);
    spareKeyId = spare.json.id;
    const hook = await call("POST", "/v1/webhooks", {
      token: keys.token,
      body: { url: "https://hooks.example.test/sweep", events: ["kill.*"], enabled: false },
    });
    expect(hook.status, hook.text).toBe(201);
    hookId = hook.json.id;
  });

  for (const e of ENDPOINTS.filter((x) => x.body)) {
    it.each(BAD_BODIES)(`${e.method} ${e.path} with %s`, async (_what, raw, refused) => {
      const res = await call(e.method, fill(e.path), { token: tokenFor(e.auth), rawBody: raw });
      if (refused || res.status >= 300) expectTyped(res, `${e.method} ${e.path}`);
      else expect(res.json).not.toHaveProperty("admin"); // accepted: and nothing leaked through __proto__
    });
    it(`${e.method} ${e.path} with a non-JSON content type`, async () => {
      expectTyped(
        await call(e.method, fill(e.path), {
          token: tokenFor(e.auth),
          rawBody: "name=x",
          contentType: "application/x-www-form-urlencoded",
        }),
        e.path,
      );
    });
  }

  for (const e of ENDPOINTS.filter((x) => x.method === "GET")) {
    it.each(BAD_QUERIES)(`${e.method} ${e.path}%s is 2xx or a typed 4xx`, async (query) => {
      const res = await call(e.method, fill(e.path) + query, { token: tokenFor(e.auth) });
      if (res.status >= 300) expectTyped(res, `${e.path}${query}`);
      else expect(res.status).toBe(200);
    });
  }

  for (const e of ENDPOINTS.filter((x) => x.auth !== "none")) {
    it(`${e.method} ${e.path} without or with a garbage token`, async () => {
      expectTyped(await call(e.method, fill(e.path), { rawBody: e.body ? "{}" : undefined }), `${e.path} no token`);
      expectTyped(await call(e.method, fill(e.path), { token: "garbage", rawBody: e.body ? "{}" : undefined }), `${e.path} garbage token`);
    });
  }

  it("POST /v1/pulse with bad bodies, all correctly signed", async () => {
    for (const [what, raw] of BAD_BODIES) {
      const res = await sendPulse(keys, raw); // none of these is a valid pulse
      expectTyped(res, `pulse ${what}`);
    }
    const extreme = [
      seedPulse({ ts: -1 }),
      seedPulse({ ts: 1e300 }),
      seedPulse({ usageDelta: 1.5 }),
      seedPulse({ tagMetrics: Array.from({ length: 600 }, (_, i) => ({ tag: `t${i}`, count: 1 })) }),
      seedPulse({ tagMetrics: [{ tag: "a", count: 1, latencyHistogram: { n: 1, s: 1, lo: 1, hi: 1, b: [999, 1] } }] }),
      seedPulse({ tagMetrics: [{ tag: "a", count: 1, customMetrics: { "Bad-Name": { min: 1, max: 1, sum: 1, count: 1 } } }] }),
      seedPulse({
        tagMetrics: [
          { tag: "a", count: 1 },
          { tag: "a", count: 2 },
        ],
      }),
      seedPulse({ metrics: "fast" }),
    ];
    for (const body of extreme) expectTyped(await sendPulse(keys, body), `pulse ${JSON.stringify(body).slice(0, 80)}`);
  }, 30_000);

  it("POST /v1/auth/token with bad bodies, all correctly signed", async () => {
    for (const [what, raw] of BAD_BODIES.filter(([, raw]) => raw !== "{}")) {
      const res = await exchangeToken(keys, { body: raw }); // none of these is an empty body or {}
      expectTyped(res, `token exchange ${what}`);
    }
  }, 30_000);

  it("after the sweep the organization is as it was: not suspended, same plan, one management token", async () => {
    const org = await call("GET", `/v1/admin/organizations/${keys.orgId}`, { token: ADMIN });
    expect(org.json).toMatchObject({ id: keys.orgId, suspended: false });
    expect(org.json.plan).toBe((await call("GET", "/v1/organizations", { token: keys.token })).json.organizations[0].plan);
    expect((await call("GET", "/v1/management-tokens", { token: keys.token })).json.managementTokens).toHaveLength(1);
  });

  it("unknown routes and methods are typed too", async () => {
    const res = await exports.default.fetch("http://waitstate.test/v1/nothing", { method: "PUT" });
    expect(res.status).toBe(404);
    expect(ErrorBodySchema.parse(await res.json()).error.code).toBe("NOT_FOUND");
    // A route that exists under other methods: 405 with Allow (every route: robustness.test.ts).
    for (const e of ENDPOINTS) {
      const wrong = await exports.default.fetch(`http://waitstate.test${fill(e.path)}`, { method: "PUT" });
      expect(wrong.status, `PUT ${e.path}`).toBe(405);
      expect(ErrorBodySchema.parse(await wrong.json()).error.code).toBe("METHOD_NOT_ALLOWED");
      expect(wrong.headers.get("allow"), `PUT ${e.path}`).toContain(e.method);
    }
  }, 60_000);

  // Strict bodies: an unknown field is named, whatever else the body holds (ids first: a bad id is still a 404).
  for (const e of ENDPOINTS.filter((x) => x.body && x.auth !== "none" && !x.path.includes("{bad}"))) {
    it(`${e.method} ${e.path} refuses an unknown field with UNKNOWN_FIELD naming it`, async () => {
      const res = await call(e.method, fill(e.path), { token: tokenFor(e.auth), body: { zzUnknownField: true } });
      expectTyped(res, `${e.method} ${e.path}`);
      expect(res.json.error.code, res.text).toBe("UNKNOWN_FIELD");
      expect(res.json.error.message).toContain("zzUnknownField");
    });
  }
});
