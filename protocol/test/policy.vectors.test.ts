import { describe, expect, it } from "vitest";
import { MAX_TAGS_PER_POLICY } from "../src/constants.js";
import { killSwitchPolicy, parsePolicy, validatePolicy } from "../src/policy.js";
import { PolicySchema, parseWith } from "../src/schemas.js";
import { POLICY_CASES, brokenPolicyCase, policyMismatch, type PolicyCase, type PolicyOutcome } from "./vectors.js";

const parsers: Record<string, (input: unknown) => PolicyOutcome> = {
  "zod PolicySchema": (input) => {
    const parsed = parseWith(PolicySchema, input);
    return parsed.ok ? { valid: true, policy: parsed.value } : { valid: false, path: parsed.issues[0]!.path };
  },
  "zero-dependency parsePolicy": (input) => {
    const parsed = parsePolicy(input);
    return parsed.ok ? { valid: true, policy: parsed.policy } : { valid: false, path: parsed.path };
  },
};

describe("policy.json conformance vectors", () => {
  it("covers the bound, prototype names and every field", () => {
    const names = POLICY_CASES.map((c) => c.name).join("\n");
    expect(names).toContain("4096 tag entries");
    expect(names).toContain("4097 tag entries");
    const bound = POLICY_CASES.find(
      (c) => c.valid && Object.keys((c.input as { tagMaxWeights?: object }).tagMaxWeights ?? {}).length === MAX_TAGS_PER_POLICY,
    );
    expect(bound).toBeDefined();
    const paths = new Set(POLICY_CASES.filter((c) => !c.valid).map((c) => c.path!.split(".")[0]));
    expect([...paths].sort()).toEqual(
      [
        "(root)",
        "globalMaxWeight",
        "issuedAt",
        "killSignal",
        "leaseDurationSeconds",
        "pulseInterval",
        "retryAfterSeconds",
        "status",
        "tagMaxWeights",
        "version",
      ].sort(),
    );
  });

  for (const [label, run] of Object.entries(parsers)) {
    describe(label, () => {
      it.each(POLICY_CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
        expect(policyMismatch(c, run(c.input))).toBeNull();
      });

      it("fails on deliberately broken vectors", () => {
        for (const c of POLICY_CASES) {
          expect(policyMismatch(brokenPolicyCase(c), run(c.input)), c.name).not.toBeNull();
          expect(policyMismatch(brokenPolicyCase(c, true), run(c.input)), c.name).not.toBeNull();
        }
      });
    });
  }

  it("a valid policy's tag map has no prototype: Object.prototype names are ordinary tags", () => {
    const input = JSON.parse('{"tagMaxWeights":{"__proto__":0,"toString":1}}') as unknown;
    for (const policy of [parsePolicy(input), parseWith(PolicySchema, input)].map((r) =>
      "policy" in r ? r.policy : r.ok ? r.value : null,
    )) {
      const tags = policy!.tagMaxWeights;
      expect(Object.getPrototypeOf(tags)).toBeNull();
      expect(Object.keys(tags)).toEqual(["__proto__", "toString"]);
      // biome-ignore lint/suspicious/noProto: the test is about a tag literally named __proto__
      expect(tags.__proto__).toBe(0);
      expect(tags.valueOf).toBeUndefined();
      expect(JSON.parse(JSON.stringify(tags))).toEqual(JSON.parse('{"__proto__":0,"toString":1}'));
    }
  });

  it("validatePolicy gives the first fault as `path: why`, or null", () => {
    expect(validatePolicy({})).toBeNull();
    expect(validatePolicy({ leaseDurationSeconds: 0.5 })).toMatch(/^leaseDurationSeconds: expected an integer/);
  });
});

describe("killSwitchPolicy: a policy that cannot be installed but carries the kill switch", () => {
  const killCases = POLICY_CASES.filter(
    (c): c is PolicyCase & { input: Record<string, unknown> } =>
      !c.valid && (c.input as { killSignal?: unknown } | null)?.killSignal === true,
  );

  it("the vectors hold such policies, the 4097-tag one among them", () => {
    expect(killCases.map((c) => c.name).join("\n")).toMatch(/4097 tag entries with the kill switch/);
  });

  it.each(killCases.map((c) => [c.name, c] as const))("%s: kill only, timing fields kept when valid on their own", (_name, c) => {
    const fallback = killSwitchPolicy(c.input)!;
    expect(fallback.killSignal).toBe(true);
    expect(fallback.status).toBe("ok");
    expect(Object.keys(fallback.tagMaxWeights)).toEqual([]);
    expect(parsePolicy(fallback)).toEqual({ ok: true, policy: fallback });
    const lease = c.input.leaseDurationSeconds;
    expect(fallback.leaseDurationSeconds).toBe(Number.isInteger(lease) ? lease : 60);
  });

  it("no kill switch to honour: null (the last good policy stays)", () => {
    for (const input of [null, [], "x", { killSignal: false }, { killSignal: "true" }, { killSignal: 1 }, { tagMaxWeights: [] }]) {
      expect(killSwitchPolicy(input)).toBeNull();
    }
  });
});
