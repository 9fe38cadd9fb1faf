import { describe, expect, it } from "vitest";
import { WaitStateError } from "../src/errors.js";
import { GATE_REASONS } from "../../protocol/src/constants.js";
import { denialBody, denialResponse, parseWeight, resolveOptions, type GateClient } from "../src/middleware/common.js";
import { createMiddleware as expressMiddleware } from "../src/middleware/express.js";
import { createPlugin as fastifyPlugin } from "../src/middleware/fastify.js";
import { createMiddleware as honoMiddleware } from "../src/middleware/hono.js";
import { withGate } from "../src/middleware/nextjs.js";

/** A client that allows everything; option checks never call it. */
const client: GateClient = {
  gate: () => ({ allowed: true, reason: "allowed" }),
  reportLatency: () => {},
  reportError: () => {},
};

const FACTORIES: Array<[string, (options: unknown) => unknown]> = [
  ["express createMiddleware", (o) => expressMiddleware(o as Parameters<typeof expressMiddleware>[0])],
  ["fastify createPlugin", (o) => fastifyPlugin(o as Parameters<typeof fastifyPlugin>[0])],
  ["hono createMiddleware", (o) => honoMiddleware(o as Parameters<typeof honoMiddleware>[0])],
  ["nextjs withGate", (o) => withGate(o as Parameters<typeof withGate>[0], () => new Response("ok"))],
];

const BAD_OPTIONS: Array<[string, unknown, RegExp]> = [
  ["options missing", undefined, /options must be an object/],
  ["options not an object", "ws", /options must be an object/],
  ["no waitstate", {}, /options\.waitstate must be a WaitState client/],
  ["waitstate without gate()", { waitstate: { reportLatency() {}, reportError() {} } }, /options\.waitstate/],
  ["waitstate null", { waitstate: null }, /options\.waitstate/],
  ["negative retryAfter", { waitstate: client, retryAfter: -1 }, /options\.retryAfter .*got -1/],
  ["NaN retryAfter", { waitstate: client, retryAfter: Number.NaN }, /options\.retryAfter .*got NaN/],
  ["infinite retryAfter", { waitstate: client, retryAfter: Infinity }, /options\.retryAfter/],
  ["string retryAfter", { waitstate: client, retryAfter: "60" }, /options\.retryAfter .*got "60"/],
  ["numeric tagFrom", { waitstate: client, tagFrom: 42 }, /options\.tagFrom .*got 42/],
  ["empty tagFrom", { waitstate: client, tagFrom: "" }, /options\.tagFrom/],
  ["object weightFrom", { waitstate: client, weightFrom: { header: "x" } }, /options\.weightFrom .*got object/],
  ["string onDenied", { waitstate: client, onDenied: "deny" }, /options\.onDenied/],
];

describe("invalid options throw at creation, naming the option", () => {
  for (const [factoryName, create] of FACTORIES) {
    it.each(BAD_OPTIONS)(`${factoryName}: %s`, (_case, options, message) => {
      let thrown: unknown;
      try {
        create(options);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(WaitStateError);
      expect((thrown as WaitStateError).code).toBe("INVALID_OPTIONS");
      expect((thrown as WaitStateError).message).toMatch(message);
      expect((thrown as WaitStateError).message).toContain(factoryName.split(" ")[0]);
    });

    it(`${factoryName}: accepts the smallest valid options and every documented option`, () => {
      expect(typeof create({ waitstate: client })).toBe("function");
      const full = { waitstate: client, tagFrom: () => "pro", weightFrom: "x-cost", retryAfter: 0, onDenied: () => {} };
      expect(typeof create(full)).toBe("function");
    });
  }

  it("nextjs withGate also refuses a missing route handler", () => {
    const bad = () => withGate({ waitstate: client }, undefined as unknown as () => Response);
    expect(bad).toThrow(WaitStateError);
    expect(bad).toThrow(/route handler/);
  });
});

describe("parseWeight: a weight header is a finite number or nothing (weight 1)", () => {
  const table: Array<[string | undefined, number | undefined]> = [
    [undefined, undefined],
    ["", undefined],
    ["3", 3],
    ["2.5", 2.5],
    ["0", 0],
    ["1e3", 1000],
    ["-2", -2], // negative reaches the gate, which counts it as 0 (docs/design.md#inputs-and-normalisation)
    ["abc", undefined],
    ["12abc", undefined],
    ["NaN", undefined],
    ["Infinity", undefined],
    ["1e999", undefined],
  ];
  it.each(table)("%j → %j", (value, weight) => {
    expect(parseWeight(value)).toBe(weight);
  });
});

describe("resolveOptions", () => {
  const headers = (req: Record<string, string>, name: string) => req[name];

  it("reads the default tag header, lower-casing a custom header name", () => {
    expect(resolveOptions({ waitstate: client }, "t", headers).tagOf({ "x-waitstate-tag": "pro" })).toBe("pro");
    expect(resolveOptions({ waitstate: client, tagFrom: "X-Plan" }, "t", headers).tagOf({ "x-plan": "free" })).toBe("free");
  });

  it("turns an absent or empty tag into no tag", () => {
    const { tagOf } = resolveOptions({ waitstate: client }, "t", headers);
    expect(tagOf({})).toBeUndefined();
    expect(tagOf({ "x-waitstate-tag": "" })).toBeUndefined();
  });

  it("ignores a tag function that throws or returns something other than a non-empty string", () => {
    const results: unknown[] = ["", 7, null, undefined];
    for (const value of results) {
      const { tagOf } = resolveOptions({ waitstate: client, tagFrom: () => value }, "t", headers);
      expect(tagOf({})).toBeUndefined();
    }
    const throwing = resolveOptions(
      {
        waitstate: client,
        tagFrom: () => {
          throw new Error("x");
        },
      },
      "t",
      headers,
    );
    expect(throwing.tagOf({})).toBeUndefined();
  });

  it("ignores a weight function that throws or returns a non-finite number", () => {
    for (const value of [Number.NaN, Infinity, "3", null]) {
      const { weightOf } = resolveOptions({ waitstate: client, weightFrom: () => value }, "t", headers);
      expect(weightOf({})).toBeUndefined();
    }
    const throwing = resolveOptions(
      {
        waitstate: client,
        weightFrom: () => {
          throw new Error("x");
        },
      },
      "t",
      headers,
    );
    expect(throwing.weightOf({})).toBeUndefined();
    expect(resolveOptions({ waitstate: client, weightFrom: () => 4 }, "t", headers).weightOf({})).toBe(4);
  });

  it("gives every request weight 1 (undefined) when weightFrom is not set, whatever its headers", () => {
    expect(resolveOptions({ waitstate: client }, "t", headers).weightOf({ "x-waitstate-weight": "9" })).toBeUndefined();
  });

  it.each([
    [undefined, "60"],
    [0, "0"],
    [30, "30"],
    [0.2, "1"],
    [4.2, "5"],
  ])("retryAfter %j → Retry-After %j", (retryAfter, header) => {
    expect(resolveOptions({ waitstate: client, retryAfter }, "t", headers).retryAfter).toBe(header);
  });
});

describe("the 429 body", () => {
  it.each(GATE_REASONS.filter((r) => r !== "allowed"))("names the reason %s in code, reason and message", (reason) => {
    const body = JSON.parse(denialBody(reason)) as { error: Record<string, unknown> };
    expect(Object.keys(body)).toEqual(["error"]);
    expect(body.error.code).toBe("RATE_LIMITED");
    expect(body.error.reason).toBe(reason);
    expect(body.error.message).toEqual(expect.stringContaining(`(reason: ${reason})`));
    expect(body.error.message).toMatch(/^Too many requests: .{10,}/);
  });

  it("still answers for a reason this SDK version does not know", () => {
    const body = JSON.parse(denialBody("brand_new")) as { error: Record<string, unknown> };
    expect(body.error).toEqual({
      code: "RATE_LIMITED",
      message: "Too many requests: the policy denied it (reason: brand_new).",
      reason: "brand_new",
    });
  });

  it("is a Web Response with status 429, Retry-After and JSON", async () => {
    const res = denialResponse("over_weight", "12");
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("12");
    expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(await res.text()).toBe(denialBody("over_weight"));
  });
});
