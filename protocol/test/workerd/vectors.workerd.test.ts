import { describe, expect, it } from "vitest";
import { LatencyHistogram } from "../../src/histogram.js";
import { parsePolicy } from "../../src/policy.js";
import { PolicySchema, parseWith } from "../../src/schemas.js";
import {
  GATE_CASES,
  HISTOGRAM_CASES,
  POLICY_CASES,
  REFLEX_CASES,
  brokenCopy,
  brokenPolicyCase,
  policyMismatch,
  closeTo,
  decideFactory,
  localGateFactory,
  runGateCase,
  runReflexCase,
  vectorNumber,
} from "../vectors.js";

describe("policy.json in workerd: zod PolicySchema and the zero-dependency parsePolicy", () => {
  const zod = (input: unknown) => {
    const parsed = parseWith(PolicySchema, input);
    return parsed.ok ? ({ valid: true, policy: parsed.value } as const) : ({ valid: false, path: parsed.issues[0]!.path } as const);
  };
  const zeroDep = (input: unknown) => {
    const parsed = parsePolicy(input);
    return parsed.ok ? ({ valid: true, policy: parsed.policy } as const) : ({ valid: false, path: parsed.path } as const);
  };
  it.each(POLICY_CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    expect(policyMismatch(c, zod(c.input))).toBeNull();
    expect(policyMismatch(c, zeroDep(c.input))).toBeNull();
  });

  it("fails on a deliberately broken vector", () => {
    const broken = brokenPolicyCase(POLICY_CASES[0]!);
    expect(policyMismatch(broken, zod(broken.input))).not.toBeNull();
    expect(policyMismatch(broken, zeroDep(broken.input))).not.toBeNull();
  });
});

describe("TypeScript gate in workerd", () => {
  it("runs inside workerd", () => {
    expect(navigator.userAgent).toBe("Cloudflare-Workers");
  });

  it.each(GATE_CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    expect(runGateCase(c, decideFactory)).toEqual([]);
    expect(runGateCase(c, localGateFactory)).toEqual([]);
  });

  it("fails on a deliberately broken vector", () => {
    expect(runGateCase(brokenCopy(GATE_CASES[5]!), localGateFactory)).toHaveLength(1);
  });
});

describe("histogram in workerd", () => {
  const recorded = HISTOGRAM_CASES.filter((c) => c.kind === "record" || c.kind === "merge");
  it.each(recorded.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const values = (c.kind === "record" ? (c.values as Array<number | string>) : [...(c.a as number[]), ...(c.b as number[])]).map(
      vectorNumber,
    );
    const h = LatencyHistogram.fromValues(values);
    expect(h.encode().b).toEqual((c.expect as { b: number[] }).b);
    for (const [q, expected] of c.quantiles as Array<[number, number | null]>) expect(closeTo(h.quantile(q), expected)).toBe(true);
  });
});

describe("reflex engine in workerd", () => {
  it.each(REFLEX_CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    expect(runReflexCase(c)).toEqual([]);
  });
});
