/**
 * The edge suites' shared body: every vector against EdgeGate (the wasm core),
 * the pure gate(), sign_pulse against the HMAC vectors. Runs in Node and in workerd.
 */
import { describe, expect, it } from "vitest";
import type { EdgeGate as EdgeGateClass, gate as gateFn, sign_pulse as signFn } from "@waitstate/edge";
import { GATE_CASES, HMAC_CASES, TOKEN_EXCHANGE_VECTORS, brokenCopy, runGateCase, type GateFactory } from "../../protocol/test/vectors.js";

export interface EdgeApi {
  EdgeGate: typeof EdgeGateClass;
  gate: typeof gateFn;
  sign_pulse: typeof signFn;
}

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
      expect(api.sign_pulse(body + " ", "1", "k")).not.toBe(a);
    });
  });
}
