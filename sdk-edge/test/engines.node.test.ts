/**
 * The edge client's two engines (src/engine.ts): the wasm core the default
 * entries use, and the protocol's TypeScript gate and histogram that
 * `@waitstate/edge/fastly` uses. The client calls nothing but this interface,
 * so each engine, driven exactly as the client drives it (installParsed,
 * gateAt, record/encode, sign), must pass the same vectors.
 */
import { describe, expect, it } from "vitest";
import "@waitstate/edge"; // the node entry: loads the wasm module into the build's core.js
import { parsePolicy } from "../dist/protocol/src/policy.js";
import { type ClientEngine, wasmEngine } from "../dist/sdk-edge/src/engine.js";
import { typescriptEngine } from "../dist/sdk-edge/src/typescript-engine.js";
import {
  GATE_CASES,
  HISTOGRAM_CASES,
  HMAC_CASES,
  TOKEN_EXCHANGE_VECTORS,
  brokenCopy,
  runGateCase,
  vectorNumber,
  type GateFactory,
} from "../../protocol/test/vectors.js";
import type { HistogramEncoding } from "@waitstate/edge";

const ENGINES: Array<[string, ClientEngine]> = [
  ["wasm", wasmEngine],
  ["typescript", typescriptEngine],
];

describe.each(ENGINES)("the %s engine", (_label, engine) => {
  const factory: GateFactory = (c) => {
    const errors: string[] = [];
    const gate = engine.gate({
      safeModeStrategy: c.config?.safeModeStrategy ?? "open",
      safeModeMaxRps: c.config?.safeModeMaxRps ?? 50,
      onError: (e) => errors.push(e.message),
    });
    if (c.policy !== null && c.lastSyncAt !== null) {
      const parsed = parsePolicy(c.policy);
      if (!parsed.ok) throw new Error(`${c.name}: ${parsed.message}`);
      const problem = gate.installParsed(parsed.policy, parsed.policy.leaseDurationSeconds, c.lastSyncAt, null);
      if (problem !== null) throw new Error(`${c.name}: ${problem}`);
    }
    return { call: (now, tag, weight) => gate.gateAt(tag, weight, now) };
  };

  it("is ready", () => {
    expect(engine.notReady()).toBeNull();
  });

  it.each(GATE_CASES.map((c) => [c.name, c] as const))("gate.json: %s", (_name, c) => {
    expect(runGateCase(c, factory)).toEqual([]);
  });

  it("gate.json: fails on a deliberately broken vector", () => {
    expect(runGateCase(brokenCopy(GATE_CASES[3]!), factory)).toHaveLength(1);
  });

  const recorded = HISTOGRAM_CASES.filter((c) => c.kind === "record" || c.kind === "merge");
  it.each(recorded.map((c) => [`${c.kind}: ${c.name}`, c] as const))("histogram.json: %s", (_name, c) => {
    const h = engine.histogram();
    const values = (c.kind === "record" ? [c.values] : [c.a, c.b]).flatMap((v) => (v as Array<string | number>).map(vectorNumber));
    for (const v of values) h.record(v);
    expect(h.count).toBe((c.expect as HistogramEncoding).n);
    expect(h.encode()).toEqual(c.expect);
    h.reset();
    expect(h.encode()).toEqual({ n: 0, s: 0, lo: 0, hi: 0, b: [] });
  });

  it.each(HMAC_CASES.map((c) => [c.name, c] as const))("hmac.json: %s", async (_name, c) => {
    expect(await engine.sign(c.body, c.timestamp, c.secretKey)).toBe(c.expect);
  });

  it.each(TOKEN_EXCHANGE_VECTORS.cases.map((c) => [c.name, c] as const))("token-exchange.json: %s", async (_name, c) => {
    expect(await engine.sign(TOKEN_EXCHANGE_VECTORS.prefix + c.body, c.timestamp, c.secretKey)).toBe(c.expect);
  });

  it("counts per tag for the pulse, and starts afresh after a take", () => {
    const gate = engine.gate({ safeModeStrategy: "open", safeModeMaxRps: 50, onError: () => {} });
    const parsed = parsePolicy({
      version: 1,
      globalMaxWeight: 10,
      tagMaxWeights: { free: 0 },
      killSignal: false,
      status: "ok",
      pulseInterval: 1000,
      leaseDurationSeconds: 60,
    });
    if (!parsed.ok) throw new Error(parsed.message);
    expect(gate.installParsed(parsed.policy, 60, 1_000, null)).toBeNull();
    expect(gate.gateAt("free", 1, 2_000)).toEqual({ allowed: false, reason: "tag_blocked" });
    gate.gateAt("pro", 3, 2_000);
    gate.gateAt("pro", 11, 2_000);
    gate.gateAt("x".repeat(200), 1, 2_000);
    expect(gate.takeCounts()).toEqual({
      usageDelta: 4,
      bouncedUnits: 2,
      tags: [
        { tag: "free", count: 1, bounced: 1 },
        { tag: "pro", count: 2, bounced: 1 },
        { tag: "__other__", count: 1, bounced: 0 },
      ],
    });
    expect(gate.takeCounts()).toEqual({ usageDelta: 0, bouncedUnits: 0, tags: [] });
  });
});
