/**
 * The edge suites' shared body: every vector against EdgeGate (the wasm core),
 * the pure gate(), sign_pulse against the HMAC vectors. Runs in Node and in workerd.
 */
import { describe, expect, it } from "vitest";
import type {
  EdgeGate as EdgeGateClass,
  EdgeHistogram as EdgeHistogramClass,
  HistogramEncoding,
  gate as gateFn,
  sign_pulse as signFn,
  validatePolicy as validateFn,
} from "@waitstate/edge";
import {
  GATE_CASES,
  HISTOGRAM_CASES,
  HMAC_CASES,
  POLICY_CASES,
  TOKEN_EXCHANGE_VECTORS,
  brokenCopy,
  brokenPolicyCase,
  closeTo,
  policyMismatch,
  runGateCase,
  vectorNumber,
  type GateFactory,
  type PolicyOutcome,
} from "../../protocol/test/vectors.js";

export interface EdgeApi {
  EdgeGate: typeof EdgeGateClass;
  EdgeHistogram: typeof EdgeHistogramClass;
  gate: typeof gateFn;
  sign_pulse: typeof signFn;
  validatePolicy: typeof validateFn;
}

type HistogramCase = (typeof HISTOGRAM_CASES)[number];

/**
 * Runs a histogram.json case through EdgeHistogram (the wasm histogram); returns
 * what differs. `decode_error` cases are the control plane's (the edge never
 * decodes); `merge` cases record `a` then `b` into one histogram, which is what
 * the merge of their histograms must equal.
 */
export function runHistogramCase(api: EdgeApi, c: HistogramCase): string[] {
  const errors: string[] = [];
  const values = (key: string) => (c[key] as Array<number | string>).map(vectorNumber);
  const check = (h: EdgeHistogramClass, expect: HistogramEncoding, quantiles: Array<[number, number | null]>) => {
    const got = h.encode();
    if (
      JSON.stringify(got.b) !== JSON.stringify(expect.b) ||
      got.n !== expect.n ||
      got.lo !== expect.lo ||
      got.hi !== expect.hi ||
      !closeTo(got.s, expect.s)
    ) {
      errors.push(`${c.name}: encoding ${JSON.stringify(got)} != ${JSON.stringify(expect)}`);
    }
    for (const [q, want] of quantiles) {
      const value = h.quantile(q);
      if (!closeTo(value, want)) errors.push(`${c.name}: quantile ${q} = ${value}, expected ${want}`);
    }
  };
  const h = new api.EdgeHistogram();
  switch (c.kind) {
    case "index": {
      h.record(vectorNumber(c.value as number));
      const index = h.encode().b[0];
      if (index !== c.expectIndex) errors.push(`${c.name}: index ${index} != ${String(c.expectIndex)}`);
      break;
    }
    case "bounds": {
      // Each bound lands in its own bucket, the next float above it in the next one.
      for (const [key, index] of [
        ["first", 0],
        ["tenth", 10],
        ["last", 164],
      ] as const) {
        const bound = c[key] as number;
        h.reset();
        h.record(bound);
        h.record(bound * (1 + Number.EPSILON));
        const b = h.encode().b;
        if (b[0] !== index || b[2] !== index + 1) errors.push(`${c.name}: ${key} ${bound} falls in ${JSON.stringify(b)}`);
      }
      break;
    }
    case "record":
      for (const v of values("values")) h.record(v);
      check(h, c.expect as HistogramEncoding, c.quantiles as Array<[number, number | null]>);
      break;
    case "merge":
      for (const v of [...values("a"), ...values("b")]) h.record(v);
      check(h, c.expect as HistogramEncoding, c.quantiles as Array<[number, number | null]>);
      break;
    case "decode_error":
      break;
    default:
      errors.push(`${c.name}: unknown kind ${c.kind}`);
  }
  return errors;
}
const T = 1_740_000_000_000;

export function edgeVectorSuite(label: string, api: EdgeApi, hmacExpected: (c: (typeof HMAC_CASES)[number]) => string) {
  const edgeFactory: GateFactory = (c) => {
    const errors: string[] = [];
    const edge = new api.EdgeGate({ ...c.config, onError: (e) => errors.push(e.message) });
    if (c.policy !== null && c.lastSyncAt !== null) {
      if (!edge.update(c.policy, c.lastSyncAt)) throw new Error(`policy refused: ${errors.join("; ")}`);
    }
    return { call: (now, tag, weight) => edge.gate(tag, weight, now) };
  };

  describe(`${label}: gate.json through EdgeGate (wasm)`, () => {
    it.each(GATE_CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
      expect(runGateCase(c, edgeFactory)).toEqual([]);
    });

    it("fails on a deliberately broken vector", () => {
      expect(runGateCase(brokenCopy(GATE_CASES[3]!), edgeFactory)).toHaveLength(1);
    });
  });

  describe(`${label}: pure gate(policy, tag, weight)`, () => {
    const synced = GATE_CASES.filter((c) => c.policy !== null && c.lastSyncAt !== null && c.step >= 3);
    it.each(synced.map((c) => [c.name, c] as const))("%s", (_name, c) => {
      const pure: GateFactory = (vector) => ({ call: (_now, tag, weight) => api.gate(vector.policy, tag, weight) });
      expect(runGateCase({ ...c, calls: c.calls.filter((call) => call.expect.reason !== "lease_expired") }, pure)).toEqual([]);
    });
  });

  describe(`${label}: histogram.json through EdgeHistogram (wasm)`, () => {
    const runnable = HISTOGRAM_CASES.filter((c) => c.kind !== "decode_error");
    it.each(runnable.map((c) => [`${c.kind}: ${c.name}`, c] as const))("%s", (_name, c) => {
      expect(runHistogramCase(api, c)).toEqual([]);
    });

    it("fails on a deliberately broken vector", () => {
      const c = runnable.find((v) => v.kind === "record" && (v.values as unknown[]).length > 0)!;
      const expect0 = c.expect as HistogramEncoding;
      expect(runHistogramCase(api, { ...c, expect: { ...expect0, n: expect0.n + 1 } })).toHaveLength(1);
    });

    it("refuses what the protocol refuses, and keeps more histograms than one instance has slots", () => {
      const h = new api.EdgeHistogram();
      for (const bad of [Number.NaN, -1, Number.POSITIVE_INFINITY, "5" as unknown as number]) expect(h.record(bad)).toBe(false);
      expect(h.record(1, 0)).toBe(false);
      expect(h.record(1, 1.5)).toBe(false);
      expect(h.encode()).toEqual({ n: 0, s: 0, lo: 0, hi: 0, b: [] });
      expect(h.quantile(0.5)).toBeNull();
      expect(h.record(2.5, 3)).toBe(true);
      expect(JSON.parse(JSON.stringify(h))).toEqual({ n: 3, s: 7.5, lo: 2.5, hi: 2.5, b: [34, 3] });
      const many = Array.from({ length: 20 }, (_, i) => {
        const m = new api.EdgeHistogram();
        m.record(i);
        return m;
      });
      expect(many.map((m) => m.encode().hi)).toEqual(Array.from({ length: 20 }, (_, i) => i));
      expect(h.count).toBe(3);
    });
  });

  describe(`${label}: policy.json through validatePolicy and EdgeGate.update`, () => {
    // The verdict and path from validatePolicy ("path: why"); a valid policy as EdgeGate.update installs it.
    const run = (input: unknown): PolicyOutcome => {
      const problem = api.validatePolicy(input);
      if (problem !== null) return { valid: false, path: problem.slice(0, problem.indexOf(": ")) };
      const errors: string[] = [];
      const g = new api.EdgeGate({ onError: (e) => errors.push(e.message) });
      if (!g.update(input as never, T)) return { valid: false, path: `update refused it: ${errors.join("; ")}` };
      return { valid: true, policy: g.policy };
    };
    it.each(POLICY_CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
      expect(policyMismatch(c, run(c.input))).toBeNull();
    });

    it("fails on deliberately broken vectors", () => {
      for (const c of POLICY_CASES.slice(0, 12)) {
        expect(policyMismatch(brokenPolicyCase(c), run(c.input)), c.name).not.toBeNull();
        expect(policyMismatch(brokenPolicyCase(c, true), run(c.input)), c.name).not.toBeNull();
      }
    });
  });

  describe(`${label}: a policy EdgeGate cannot install still honours its kill switch`, () => {
    const killCases = POLICY_CASES.filter((c) => !c.valid && (c.input as { killSignal?: unknown } | null)?.killSignal === true);

    it.each(killCases.map((c) => [c.name, c] as const))(
      "%s: every call denied with kill_signal, reported as INVALID_POLICY",
      (_name, c) => {
        const errors: Array<{ code: string; message: string }> = [];
        const g = new api.EdgeGate({ onError: (e) => errors.push({ code: e.code, message: e.message }) });
        expect(g.update({ globalMaxWeight: null }, T)).toBe(true);
        expect(g.gate("free", 1, T + 1)).toEqual({ allowed: true, reason: "allowed" });
        expect(g.update(JSON.stringify(c.input), T + 10)).toBe(true);
        for (const tag of ["free", "tag-0001", "__proto__", undefined])
          expect(g.gate(tag, 1, T + 20)).toEqual({ allowed: false, reason: "kill_signal" });
        expect(g.policy?.killSignal).toBe(true);
        expect(errors).toHaveLength(1);
        expect(errors[0]!.code).toBe("INVALID_POLICY");
        expect(errors[0]!.message.startsWith(`${c.path}: `), errors[0]!.message).toBe(true);
        expect(errors[0]!.message).toMatch(/kill switch, which is honoured/);
        expect(api.gate(c.input as never, "free")).toEqual({ allowed: false, reason: "kill_signal" });
        // A valid policy without the kill switch lifts it.
        expect(g.update({ tagMaxWeights: { free: 0 } }, T + 30)).toBe(true);
        expect(g.gate("pro", 1, T + 40)).toEqual({ allowed: true, reason: "allowed" });
      },
    );

    it("an invalid policy without the kill switch is refused and the last good one stays", () => {
      const errors: string[] = [];
      const g = new api.EdgeGate({ onError: (e) => errors.push(e.message) });
      g.update({ tagMaxWeights: { free: 0 } }, T);
      const tooMany = Object.fromEntries(Array.from({ length: 4097 }, (_, i) => [`t${i}`, 0]));
      expect(g.update({ tagMaxWeights: tooMany, killSignal: false }, T + 1)).toBe(false);
      expect(g.gate("pro", 1, T + 2)).toEqual({ allowed: true, reason: "allowed" });
      expect(g.gate("free", 1, T + 2)).toEqual({ allowed: false, reason: "tag_blocked" });
      expect(errors).toEqual(["tagMaxWeights: at most 4096 tag entries; keeping the last good policy"]);
    });
  });

  describe(`${label}: sign_pulse`, () => {
    it.each(HMAC_CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
      expect(api.sign_pulse(c.body, c.timestamp, c.secretKey)).toBe(hmacExpected(c));
    });

    it.each(TOKEN_EXCHANGE_VECTORS.cases.map((c) => [c.name, c] as const))("token exchange: %s", (_name, c) => {
      expect(api.sign_pulse(TOKEN_EXCHANGE_VECTORS.prefix + c.body, c.timestamp, c.secretKey)).toBe(c.expect);
    });

    it("signs bodies larger than the wasm I/O buffer", () => {
      const body = JSON.stringify({ pad: "x".repeat(60_000) });
      const a = api.sign_pulse(body, "1", "k");
      expect(a).toMatch(/^[0-9a-f]{64}$/);
      expect(api.sign_pulse(`${body} `, "1", "k")).not.toBe(a);
    });
  });
}
