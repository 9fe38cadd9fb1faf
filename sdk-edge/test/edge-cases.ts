/**
 * The edge suites' shared body: every vector against EdgeGate (the wasm core),
 * the pure gate(), sign_pulse against the HMAC vectors. Runs in Node and in workerd.
 */
import { describe, expect, it } from "vitest";
import type { EdgeGate as EdgeGateClass, gate as gateFn, sign_pulse as signFn, validatePolicy as validateFn } from "@waitstate/edge";
import {
  GATE_CASES,
  HMAC_CASES,
  POLICY_CASES,
  brokenCopy,
  brokenPolicyCase,
  policyMismatch,
  runGateCase,
  type GateFactory,
  type PolicyOutcome,
} from "../../protocol/test/vectors.js";

export interface EdgeApi {
  EdgeGate: typeof EdgeGateClass;
  gate: typeof gateFn;
  sign_pulse: typeof signFn;
  validatePolicy: typeof validateFn;
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

    it.each(killCases.map((c) => [c.name, c] as const))("%s: every call denied with kill_signal, reported as INVALID_POLICY", (_name, c) => {
      const errors: Array<{ code: string; message: string }> = [];
      const g = new api.EdgeGate({ onError: (e) => errors.push({ code: e.code, message: e.message }) });
      expect(g.update({ globalMaxWeight: null }, T)).toBe(true);
      expect(g.gate("free", 1, T + 1)).toEqual({ allowed: true, reason: "allowed" });
      expect(g.update(JSON.stringify(c.input), T + 10)).toBe(true);
      for (const tag of ["free", "tag-0001", "__proto__", undefined]) expect(g.gate(tag, 1, T + 20)).toEqual({ allowed: false, reason: "kill_signal" });
      expect(g.policy?.killSignal).toBe(true);
      expect(errors).toHaveLength(1);
      expect(errors[0]!.code).toBe("INVALID_POLICY");
      expect(errors[0]!.message.startsWith(`${c.path}: `), errors[0]!.message).toBe(true);
      expect(errors[0]!.message).toMatch(/kill switch, which is honoured/);
      expect(api.gate(c.input as never, "free")).toEqual({ allowed: false, reason: "kill_signal" });
      // A valid policy without the kill switch lifts it.
      expect(g.update({ tagMaxWeights: { free: 0 } }, T + 30)).toBe(true);
      expect(g.gate("pro", 1, T + 40)).toEqual({ allowed: true, reason: "allowed" });
    });

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

    it("signs bodies larger than the wasm I/O buffer", () => {
      const body = JSON.stringify({ pad: "x".repeat(60_000) });
      const a = api.sign_pulse(body, "1", "k");
      expect(a).toMatch(/^[0-9a-f]{64}$/);
      expect(api.sign_pulse(body + " ", "1", "k")).not.toBe(a);
    });
  });
}
