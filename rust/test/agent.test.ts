/**
 * The agent's HTTP contract, route for route and error for error, against the
 * Rust binary (`rust/agent`, `waitstate-agent`) and the stand-in control plane
 * of the SDK tests: each test spawns the agent, drives it over HTTP, and reads
 * what it pulsed. Its final pulse (SIGTERM) carries everything a test did.
 * What a process cannot show from outside (a client that panics, a smaller
 * body limit, the configuration table) is tested in the crate's unit tests.
 */
import { request } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { startControlPlane, type FakeControlPlane, type ReceivedPulse } from "../../sdk-node/test/support/control-plane.js";
import { built, healthOnceSynced, killAgents, listening, spawnAgent, stopAgent, type AgentProcess } from "./support/agent.js";

interface Harness {
  cp: FakeControlPlane;
  agent: AgentProcess;
  instanceId: string;
  url: string;
}

/** Every error code the agent answers with, and its status. */
const AGENT_ERROR_STATUS = {
  INVALID_JSON: 400,
  INVALID_BODY: 400,
  BODY_TOO_LARGE: 400,
  INVALID_METRIC_NAME: 400,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  INTERNAL: 500,
} as const;
type AgentErrorCode = keyof typeof AGENT_ERROR_STATUS;

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  killAgents();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type PolicyPatch = Parameters<FakeControlPlane["setPolicy"]>[0];
let agents = 0;

/**
 * A control plane serving `policy` and the agent of it on a free port. With a
 * long `pulseInterval`, nothing is pulsed after the first pulse until SIGTERM
 * sends the final one: one pulse then carries everything the test did.
 */
async function start(pulseInterval = 100, policy?: PolicyPatch): Promise<Harness> {
  const cp = await startControlPlane({ pulseInterval });
  cleanups.push(() => cp.stop());
  if (policy !== undefined) cp.setPolicy(policy);
  const instanceId = `agent-test-${process.pid}-${++agents}`;
  const agent = spawnAgent({
    WAITSTATE_PUBLISH_KEY: cp.publishKey,
    WAITSTATE_SECRET_KEY: cp.secretKey,
    WAITSTATE_BASE_URL: cp.url,
    WAITSTATE_INSTANCE_ID: instanceId,
    PORT: "0",
  });
  const url = await listening(agent);
  return { cp, agent, instanceId, url };
}

/** Synced, and the first pulse (which carries nothing of the test) is behind us. */
async function startSynced(policy?: PolicyPatch, pulseInterval = 60_000): Promise<Harness> {
  const h = await start(pulseInterval, policy);
  await h.cp.waitFor(() => h.cp.pulses.length >= 1, 5000, "the first pulse");
  expect(await healthOnceSynced(h.url, 5000)).toMatchObject({ synced: true });
  return h;
}

/** Stops the agent (SIGTERM: the final pulse, exit 0) and checks that it said nothing on stderr. */
async function stop(h: Harness): Promise<void> {
  expect(await stopAgent(h.agent)).toEqual({ code: 0, signal: null });
  expect(h.agent.stderr()).toBe("");
}

function post(url: string, body?: unknown, raw = false): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: raw ? (body as string) : JSON.stringify(body) }),
  });
}

async function postJson(url: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await post(url, body);
  return { status: res.status, json: await res.json() };
}

type TagMetric = {
  tag: string;
  count: number;
  bounced: number;
  errors: number;
  latency: number;
  latencyHistogram?: { n: number; s: number };
  customMetrics?: Record<string, unknown>;
};

function tagMetricsOf(pulse: ReceivedPulse | undefined): TagMetric[] {
  return (pulse?.body.tagMetrics ?? []) as TagMetric[];
}

/** The tag's entry in the last pulse after the agent's final flush. */
async function finalPulseEntry(h: Harness, tag: string): Promise<TagMetric | undefined> {
  const before = h.cp.pulses.length;
  await stop(h);
  expect(h.cp.pulses.length).toBeGreaterThan(before);
  return tagMetricsOf(h.cp.pulses.at(-1)).find((m) => m.tag === tag);
}

/** Asks /gate until `predicate` holds on the answer (the policy arrives with a pulse). */
async function gateUntil(
  url: string,
  body: unknown,
  predicate: (answer: { allowed: boolean; reason: string }) => boolean,
): Promise<{ allowed: boolean; reason: string }> {
  const until = Date.now() + 5000;
  for (;;) {
    const answer = (await (await post(`${url}/gate`, body)).json()) as { allowed: boolean; reason: string };
    if (predicate(answer)) return answer;
    if (Date.now() > until) throw new Error(`gate never answered as expected; last ${JSON.stringify(answer)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function expectHealthy(url: string): Promise<void> {
  const res = await fetch(`${url}/health`);
  expect(res.status).toBe(200);
  expect(await res.json()).toMatchObject({ status: "ok" });
}

describe.skipIf(built.binary === undefined)("happy paths", () => {
  it("GET /health: ok, the instance id, synced and the policy version once synced", async () => {
    const h = await start();
    const before = await fetch(`${h.url}/health`);
    expect(before.status).toBe(200);
    expect(before.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(await before.json()).toMatchObject({ status: "ok", instanceId: h.instanceId });
    expect(await healthOnceSynced(h.url, 5000)).toEqual({
      status: "ok",
      instanceId: h.instanceId,
      synced: true,
      policyVersion: 1,
      safeMode: false,
    });
  });

  it("HEAD /health answers 200 without a body", async () => {
    const h = await start();
    const res = await fetch(`${h.url}/health`, { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
  });

  it("POST /gate allows under an open policy, with a body, an empty body, nulls or no body at all", async () => {
    const h = await startSynced();
    for (const body of [{ tag: "search", weight: 2 }, {}, { tag: null, weight: null }]) {
      expect(await postJson(`${h.url}/gate`, body)).toEqual({ status: 200, json: { allowed: true, reason: "allowed" } });
    }
    expect(await postJson(`${h.url}/gate`)).toEqual({ status: 200, json: { allowed: true, reason: "allowed" } });
    const blank = await post(`${h.url}/gate`, "  \n", true);
    expect({ status: blank.status, json: await blank.json() }).toEqual({ status: 200, json: { allowed: true, reason: "allowed" } });
  });

  it.each([
    ["a blocked tag", { tagMaxWeights: { free: 0 } }, { tag: "free" }, "tag_blocked"],
    ["a weight over the tag's limit", { tagMaxWeights: { free: 3 } }, { tag: "free", weight: 4 }, "over_weight"],
    ["a global block", { globalMaxWeight: 0 }, { tag: "anything" }, "global_block"],
    ["the kill signal", { killSignal: true }, {}, "kill_signal"],
  ])("POST /gate denies %s", async (_name, policy, body, reason) => {
    const h = await startSynced(policy);
    expect(await postJson(`${h.url}/gate`, body)).toEqual({ status: 200, json: { allowed: false, reason } });
  });

  it("POST /gate keeps allowing the tags the policy does not block", async () => {
    const h = await startSynced({ tagMaxWeights: { free: 0 } });
    expect(await postJson(`${h.url}/gate`, { tag: "free" })).toMatchObject({ json: { allowed: false } });
    expect(await postJson(`${h.url}/gate`, { tag: "paid" })).toEqual({ status: 200, json: { allowed: true, reason: "allowed" } });
  });

  it("a policy change reaches the answers within a pulse or two", async () => {
    const h = await startSynced(undefined, 100);
    expect(await postJson(`${h.url}/gate`, { tag: "free" })).toMatchObject({ json: { allowed: true } });
    h.cp.setPolicy({ tagMaxWeights: { free: 0 } });
    expect(await gateUntil(h.url, { tag: "free" }, (a) => !a.allowed)).toEqual({ allowed: false, reason: "tag_blocked" });
  });

  it("POST /gate counts calls and bounces, and records latency_ms and error for the tag in the pulse", async () => {
    const h = await startSynced({ tagMaxWeights: { search: 5 } });
    await post(`${h.url}/gate`, { tag: "search", weight: 1, latency_ms: 40 });
    await post(`${h.url}/gate`, { tag: "search", weight: 1, latency_ms: 60, error: true });
    await post(`${h.url}/gate`, { tag: "search", error: false });
    expect(await finalPulseEntry(h, "search")).toMatchObject({
      tag: "search",
      count: 3,
      bounced: 0,
      errors: 1,
      latency: 50,
      latencyHistogram: { n: 2, s: 100 },
    });
  });

  it("POST /gate records the telemetry even when the call is denied", async () => {
    const h = await startSynced({ tagMaxWeights: { free: 0 } });
    const denied = await postJson(`${h.url}/gate`, { tag: "free", latency_ms: 12, error: true });
    expect(denied.json).toEqual({ allowed: false, reason: "tag_blocked" });
    expect(await finalPulseEntry(h, "free")).toMatchObject({ count: 1, bounced: 1, errors: 1, latencyHistogram: { n: 1, s: 12 } });
  });

  it("POST /report-latency → 204, and the latency reaches the pulse", async () => {
    const h = await startSynced();
    const res = await post(`${h.url}/report-latency`, { ms: 42.5, tag: "search" });
    expect(res.status).toBe(204);
    expect(await res.text()).toBe("");
    expect(await finalPulseEntry(h, "search")).toMatchObject({ count: 0, latency: 42.5, latencyHistogram: { n: 1, s: 42.5 } });
  });

  it("POST /report-error → 204, with a tag or with none (the default tag)", async () => {
    const h = await startSynced();
    expect((await post(`${h.url}/report-error`, { tag: "search" })).status).toBe(204);
    expect((await post(`${h.url}/report-error`, { tag: "search" })).status).toBe(204);
    expect((await post(`${h.url}/report-error`)).status).toBe(204);
    const before = h.cp.pulses.length;
    await stop(h);
    expect(h.cp.pulses.length).toBe(before + 1);
    const metrics = tagMetricsOf(h.cp.pulses.at(-1));
    expect(metrics.find((m) => m.tag === "search")).toMatchObject({ errors: 2 });
    expect(metrics.find((m) => m.tag === "__default__")).toMatchObject({ errors: 1 });
  });

  it("POST /report-metric → 204, and the aggregate reaches the pulse", async () => {
    const h = await startSynced();
    expect((await post(`${h.url}/report-metric`, { metric: "queue_depth", value: 7, tag: "search" })).status).toBe(204);
    expect((await post(`${h.url}/report-metric`, { metric: "queue_depth", value: -3, tag: "search" })).status).toBe(204);
    expect(await finalPulseEntry(h, "search")).toMatchObject({
      customMetrics: { queue_depth: { min: -3, max: 7, sum: 4, count: 2 } },
    });
  });

  it("every route feeds the one client: one pulse carries them all", async () => {
    const h = await startSynced();
    await post(`${h.url}/gate`, { tag: "checkout" });
    await post(`${h.url}/coprocess`, {
      version: 1,
      stage: "RouterRequest",
      control: "continue",
      headers: { "x-waitstate-tag": ["checkout"] },
    });
    await post(`${h.url}/report-latency`, { ms: 10, tag: "checkout" });
    await post(`${h.url}/report-error`, { tag: "checkout" });
    await post(`${h.url}/report-metric`, { metric: "cart_items", value: 3, tag: "checkout" });
    expect(await finalPulseEntry(h, "checkout")).toMatchObject({
      count: 2,
      errors: 1,
      latencyHistogram: { n: 1, s: 10 },
      customMetrics: { cart_items: { min: 3, max: 3, sum: 3, count: 1 } },
    });
    expect(h.cp.pulses.at(-1)!.body).toMatchObject({ instanceId: h.instanceId, usageDelta: 2, bouncedUnits: 0 });
  });

  it("ignores a query string and answers on keep-alive connections", async () => {
    const h = await startSynced();
    for (let i = 0; i < 5; i++) {
      expect(await postJson(`${h.url}/gate?from=test`, { tag: "search" })).toEqual({
        status: 200,
        json: { allowed: true, reason: "allowed" },
      });
    }
  });
});

describe.skipIf(built.binary === undefined)("POST /coprocess (Apollo Router coprocessor)", () => {
  const routerRequest = (headers: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    version: 1,
    stage: "RouterRequest",
    control: "continue",
    id: "1b19c05fdafc521016df33148ad63c1b",
    headers: { "content-type": ["application/json"], ...headers },
    body: '{"query":"{ me { name } }"}',
    context: { entries: { "apollo::supergraph::operation_name": "Me" } },
    sdl: "type Query { me: User }",
    path: "/",
    method: "POST",
    ...extra,
  });

  it("continue: echoes everything it received", async () => {
    const h = await startSynced();
    const sent = routerRequest({ "x-waitstate-tag": ["paid"] });
    const res = await postJson(`${h.url}/coprocess`, sent);
    expect(res).toEqual({ status: 200, json: sent });
  });

  it("break: control { break: 429 } and a GraphQL error body (a string at the router stage), the rest echoed", async () => {
    const h = await startSynced({ tagMaxWeights: { free: 0 } });
    const sent = routerRequest({ "X-WaitState-Tag": ["free", "ignored"] });
    const { status, json } = await postJson(`${h.url}/coprocess`, sent);
    expect(status).toBe(200);
    const answer = json as Record<string, unknown>;
    expect({ ...answer, body: undefined }).toEqual({ ...sent, control: { break: 429 }, body: undefined });
    expect(typeof answer.body).toBe("string");
    expect(JSON.parse(answer.body as string)).toEqual({
      errors: [
        {
          message: "Too many requests: WaitState denied this request (reason: tag_blocked).",
          extensions: { code: "RATE_LIMITED", reason: "tag_blocked", tag: "free" },
        },
      ],
    });
  });

  it("break at the supergraph stage: the body is a JSON object", async () => {
    const h = await startSynced({ tagMaxWeights: { free: 0 } });
    const sent = routerRequest({ "x-waitstate-tag": "free" }, { stage: "SupergraphRequest", body: { query: "{ me { name } }" } });
    const { json } = await postJson(`${h.url}/coprocess`, sent);
    expect(json).toEqual({
      ...sent,
      control: { break: 429 },
      body: {
        errors: [
          { message: expect.stringContaining("tag_blocked"), extensions: { code: "RATE_LIMITED", reason: "tag_blocked", tag: "free" } },
        ],
      },
    });
  });

  it("weight from x-waitstate-weight; top-level tag and weight win over the headers", async () => {
    const h = await startSynced({ tagMaxWeights: { free: 0, paid: 5 } });
    const control = async (headers: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      ((await postJson(`${h.url}/coprocess`, routerRequest(headers, extra))).json as { control: unknown }).control;
    expect(await control({ "x-waitstate-tag": ["paid"], "x-waitstate-weight": ["5"] })).toBe("continue");
    expect(await control({ "x-waitstate-tag": ["paid"], "x-waitstate-weight": ["6"] })).toEqual({ break: 429 });
    expect(await control({ "x-waitstate-tag": ["free"] }, { tag: "paid" })).toBe("continue");
    expect(await control({ "x-waitstate-tag": ["paid"] }, { tag: "free" })).toEqual({ break: 429 });
    expect(await control({ "x-waitstate-tag": ["paid"], "x-waitstate-weight": ["6"] }, { weight: 1 })).toBe("continue");
  });

  it("a malformed weight header means the default weight, not a failed request", async () => {
    const h = await startSynced({ tagMaxWeights: { paid: 1 } });
    for (const weight of [["lots"], [""], ["-4"], [7], {}]) {
      const { status, json } = await postJson(
        `${h.url}/coprocess`,
        routerRequest({ "x-waitstate-tag": ["paid"], "x-waitstate-weight": weight }),
      );
      expect(status).toBe(200);
      expect((json as { control: unknown }).control).toBe("continue");
    }
  });

  it("response stages are not gated (each request counts once) but report latencyMs and error", async () => {
    const h = await startSynced();
    const sent = routerRequest({ "x-waitstate-tag": ["api"] }, { stage: "RouterResponse", latencyMs: 25, error: true, statusCode: 500 });
    expect(await postJson(`${h.url}/coprocess`, sent)).toEqual({ status: 200, json: sent });
    expect(await finalPulseEntry(h, "api")).toMatchObject({ count: 0, errors: 1, latencyHistogram: { n: 1, s: 25 } });
  });

  it("request stages count the call and report latencyMs and error for the tag", async () => {
    const h = await startSynced();
    await post(`${h.url}/coprocess`, routerRequest({ "x-waitstate-tag": ["api"] }, { latencyMs: 30, error: false }));
    await post(`${h.url}/coprocess`, routerRequest({ "x-waitstate-tag": ["api"] }, { stage: "SubgraphRequest", serviceName: "users" }));
    expect(await finalPulseEntry(h, "api")).toMatchObject({ count: 2, errors: 0, latencyHistogram: { n: 1, s: 30 } });
  });

  it("without a tag, the call counts under the GraphQL operation name: the router's context, operationName, the query", async () => {
    const h = await startSynced({ tagMaxWeights: { Blocked: 0 } });
    const sent = routerRequest({});
    expect((await postJson(`${h.url}/coprocess`, sent)).json).toEqual(sent);
    const noContext = { context: { entries: {} } };
    await post(`${h.url}/coprocess`, routerRequest({}, { ...noContext, body: '{"query":"query Me { me { id } }","operationName":"Me"}' }));
    await post(`${h.url}/coprocess`, routerRequest({}, { ...noContext, body: '{"query":"query Me { me { id } }"}' }));
    const denied = routerRequest({}, { ...noContext, stage: "SupergraphRequest", body: { query: "mutation Blocked { x }" } });
    expect(((await postJson(`${h.url}/coprocess`, denied)).json as { control: unknown }).control).toEqual({ break: 429 });
    // A tag given in the header wins over the operation name.
    await post(`${h.url}/coprocess`, routerRequest({ "x-waitstate-tag": ["paid"] }));
    const before = h.cp.pulses.length;
    await stop(h);
    expect(h.cp.pulses.length).toBe(before + 1);
    const metrics = tagMetricsOf(h.cp.pulses.at(-1));
    expect(metrics.find((m) => m.tag === "Me")).toMatchObject({ count: 3 });
    expect(metrics.find((m) => m.tag === "Blocked")).toMatchObject({ count: 1, bounced: 1 });
    expect(metrics.find((m) => m.tag === "paid")).toMatchObject({ count: 1 });
  });

  it("without a tag or an operation name (an anonymous query), the call counts under the default tag", async () => {
    const h = await startSynced();
    const sent = routerRequest({}, { context: { entries: {} } });
    expect((await postJson(`${h.url}/coprocess`, sent)).json).toEqual(sent);
    expect(await finalPulseEntry(h, "__default__")).toMatchObject({ count: 1 });
  });
});

describe.skipIf(built.binary === undefined)("bad requests get a typed error, and the agent keeps serving", () => {
  const huge = JSON.stringify({ tag: "x".repeat(100 * 1024) });
  const cases: Array<
    [name: string, method: string, path: string, body: string | undefined, status: number, code: AgentErrorCode, message: RegExp]
  > = [
    ["bad JSON", "POST", "/gate", "{tag:", 400, "INVALID_JSON", /^body: not valid JSON/],
    ["a JSON array", "POST", "/gate", "[1]", 400, "INVALID_BODY", /^body: expected an object, got an array$/],
    ["JSON null", "POST", "/report-error", "null", 400, "INVALID_BODY", /^body: expected an object, got null$/],
    ["a JSON string", "POST", "/gate", '"free"', 400, "INVALID_BODY", /^body: expected an object/],
    ["tag not a string", "POST", "/gate", '{"tag":5}', 400, "INVALID_BODY", /^tag: expected a string, got 5$/],
    ["weight a string", "POST", "/gate", '{"weight":"2"}', 400, "INVALID_BODY", /^weight: expected a finite number >= 0, got "2"$/],
    ["weight negative", "POST", "/gate", '{"weight":-1}', 400, "INVALID_BODY", /^weight: /],
    ["weight infinite", "POST", "/gate", '{"weight":1e999}', 400, "INVALID_BODY", /^weight: .*got Infinity$/],
    ["latency_ms negative", "POST", "/gate", '{"latency_ms":-5}', 400, "INVALID_BODY", /^latency_ms: /],
    ["error not a boolean", "POST", "/gate", '{"error":"yes"}', 400, "INVALID_BODY", /^error: expected true or false, got "yes"$/],
    ["ms missing", "POST", "/report-latency", "{}", 400, "INVALID_BODY", /^ms: required$/],
    ["ms missing (empty body)", "POST", "/report-latency", "", 400, "INVALID_BODY", /^ms: required$/],
    ["ms a string", "POST", "/report-latency", '{"ms":"4"}', 400, "INVALID_BODY", /^ms: /],
    ["ms negative", "POST", "/report-latency", '{"ms":-0.5}', 400, "INVALID_BODY", /^ms: /],
    ["report-error tag an array", "POST", "/report-error", '{"tag":["a"]}', 400, "INVALID_BODY", /^tag: expected a string, got an array$/],
    ["metric missing", "POST", "/report-metric", '{"value":1}', 400, "INVALID_BODY", /^metric: required$/],
    [
      "metric value a string",
      "POST",
      "/report-metric",
      '{"metric":"depth","value":"1"}',
      400,
      "INVALID_BODY",
      /^value: expected a finite number/,
    ],
    [
      "metric name with capitals",
      "POST",
      "/report-metric",
      '{"metric":"Queue Depth","value":1}',
      400,
      "INVALID_METRIC_NAME",
      /^metric: "Queue Depth" is not a valid/,
    ],
    ["metric name reserved", "POST", "/report-metric", '{"metric":"p95_latency","value":1}', 400, "INVALID_METRIC_NAME", /p95_latency/],
    [
      "metric name too long",
      "POST",
      "/report-metric",
      JSON.stringify({ metric: `m${"x".repeat(63)}`, value: 1 }),
      400,
      "INVALID_METRIC_NAME",
      /^metric: /,
    ],
    ["coprocess empty body", "POST", "/coprocess", "", 400, "INVALID_BODY", /^body: expected a JSON object, got nothing$/],
    [
      "coprocess headers an array",
      "POST",
      "/coprocess",
      '{"stage":"RouterRequest","headers":[]}',
      400,
      "INVALID_BODY",
      /^headers: expected an object/,
    ],
    ["coprocess stage a number", "POST", "/coprocess", '{"stage":1}', 400, "INVALID_BODY", /^stage: /],
    ["coprocess latencyMs a string", "POST", "/coprocess", '{"latencyMs":"5"}', 400, "INVALID_BODY", /^latencyMs: /],
    ["coprocess weight negative", "POST", "/coprocess", '{"weight":-2}', 400, "INVALID_BODY", /^weight: /],
    ["a 100 KiB body", "POST", "/gate", huge, 400, "BODY_TOO_LARGE", /^body: larger than 65536 bytes$/],
    ["a 100 KiB body on a telemetry route", "POST", "/report-metric", huge, 400, "BODY_TOO_LARGE", /65536/],
    ["an unknown path", "GET", "/nope", undefined, 404, "NOT_FOUND", /^no route GET \/nope; routes: \/gate, /],
    ["a trailing slash", "POST", "/gate/", "{}", 404, "NOT_FOUND", /\/gate\//],
    ["the root", "GET", "/", undefined, 404, "NOT_FOUND", /no route GET \/;/],
    ["GET on a POST route", "GET", "/gate", undefined, 405, "METHOD_NOT_ALLOWED", /^\/gate takes POST, not GET$/],
    ["PUT on a POST route", "PUT", "/report-metric", "{}", 405, "METHOD_NOT_ALLOWED", /takes POST, not PUT/],
    ["POST on /health", "POST", "/health", "{}", 405, "METHOD_NOT_ALLOWED", /^\/health takes GET, HEAD, not POST$/],
  ];

  it.each(cases)("%s → %s %s: %i %s", async (_name, method, path, body, status, code, message) => {
    const h = await start();
    const res = await fetch(`${h.url}${path}`, { method, ...(body === undefined ? {} : { body }) });
    expect(res.status).toBe(status);
    const json = (await res.json()) as { error: { code: string; message: string } };
    expect(Object.keys(json)).toEqual(["error"]);
    expect(json.error.code).toBe(code);
    expect(json.error.message).toMatch(message);
    if (status === 405) expect(res.headers.get("allow")).toBe(path === "/health" ? "GET, HEAD" : "POST");
    await expectHealthy(h.url);
    expect(await postJson(`${h.url}/gate`, {})).toMatchObject({ status: 200 });
  });

  it("the table covers every error code but INTERNAL (tested below), each with its status", () => {
    const seen = new Map(cases.map(([, , , , status, code]) => [code, status]));
    seen.set("INTERNAL", 500);
    expect(Object.fromEntries(seen)).toEqual(AGENT_ERROR_STATUS);
  });

  it("bad requests reach neither the gate nor the telemetry", async () => {
    const h = await startSynced();
    for (const [, method, path, body] of cases) {
      await (await fetch(`${h.url}${path}`, { method, ...(body === undefined ? {} : { body }) })).arrayBuffer();
    }
    const before = h.cp.pulses.length;
    await stop(h);
    expect(h.cp.pulses.length).toBe(before + 1);
    expect(h.cp.pulses.at(-1)!.body).toMatchObject({ usageDelta: 0, tagMetrics: [] });
  });

  it("an oversize body without Content-Length is refused while it streams, not after", async () => {
    const h = await start();
    const { port } = new URL(h.url);
    const chunk = Buffer.alloc(16 * 1024, 0x20);
    const outcome = await new Promise<{ status: number; body: string; sentBytes: number }>((resolve, reject) => {
      let sentBytes = 0;
      const req = request(
        { host: "127.0.0.1", port, method: "POST", path: "/gate", headers: { "transfer-encoding": "chunked" } },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (body += d));
          res.on("end", () => {
            clearInterval(writer);
            resolve({ status: res.statusCode ?? 0, body, sentBytes });
          });
        },
      );
      req.on("error", (e) => {
        clearInterval(writer);
        reject(e);
      });
      req.write('{"tag":"');
      // Never ends by itself: only the agent's answer stops it.
      const writer = setInterval(() => {
        if (sentBytes > 64 * 1024 * 1024) {
          clearInterval(writer);
          return reject(new Error("the agent read 64 MiB without answering"));
        }
        req.write(chunk);
        sentBytes += chunk.length;
      }, 1);
    });
    expect(outcome.status).toBe(400);
    expect(JSON.parse(outcome.body)).toEqual({ error: { code: "BODY_TOO_LARGE", message: "body: larger than 65536 bytes" } });
    expect(outcome.sentBytes).toBeLessThan(8 * 1024 * 1024);
    await expectHealthy(h.url);
  });

  it("a declared Content-Length over the limit is refused before the body is read", async () => {
    const h = await start();
    const { port } = new URL(h.url);
    const answer = await new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
      const req = request(
        { host: "127.0.0.1", port, method: "POST", path: "/gate", headers: { "content-length": String(10 * 1024 * 1024) } },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (body += d));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }));
        },
      );
      req.on("error", reject);
      req.write("{}"); // 10 MiB announced, 2 bytes sent: only the header can have caused the answer
    });
    expect(answer).toEqual({ status: 400, connection: "close", body: expect.stringContaining('"BODY_TOO_LARGE"') });
    await expectHealthy(h.url);
  });

  it("a body of exactly the limit is read", async () => {
    const h = await start();
    const body = JSON.stringify({ tag: "t" });
    const padded = body + " ".repeat(64 * 1024 - body.length);
    expect(Buffer.byteLength(padded)).toBe(64 * 1024);
    expect((await post(`${h.url}/gate`, padded, true)).status).toBe(200);
    expect((await post(`${h.url}/gate`, `${padded} `, true)).status).toBe(400);
  });

  it("a caller that hangs up mid-body leaves the agent serving", async () => {
    const h = await start();
    const { port } = new URL(h.url);
    await new Promise<void>((resolve) => {
      const req = request({ host: "127.0.0.1", port, method: "POST", path: "/gate", headers: { "content-length": "100" } });
      req.on("error", () => resolve());
      req.write('{"tag":', () => setTimeout(() => req.destroy(), 20));
      req.on("close", () => resolve());
    });
    await expectHealthy(h.url);
  });
});
