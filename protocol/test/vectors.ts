/**
 * Loads and runs the conformance vectors (protocol/vectors/*.json) against any
 * gate implementation. Shared by the Node and workerd suites; the JSON is
 * imported as a module so it bundles into workerd too.
 */
// Imported as text and parsed with JSON.parse, as a policy on the wire is: a bundler's
// JSON-to-object-literal transform would turn a "__proto__" key into a prototype.
import gateText from "../vectors/gate.json?raw";
import histogramText from "../vectors/histogram.json?raw";
import hmacText from "../vectors/hmac.json?raw";
import reflexText from "../vectors/reflex.json?raw";
import policyText from "../vectors/policy.json?raw";
import tokenExchangeText from "../vectors/token-exchange.json?raw";
import { LocalGate, decide, newGateState, type GatePolicy, type GateResult } from "../src/gate.js";
import type { SafeModeStrategy } from "../src/constants.js";
import {
  evaluateReflexes,
  mergeWindow,
  type EngineRule,
  type RuleState,
  type TagConfig,
  type WindowPulse,
  type WindowStats,
} from "../src/reflex.js";

export interface GateCall {
  now: number;
  tag?: string;
  weight?: number | string;
  expect: { allowed: boolean; reason: string };
}

export interface GateCase {
  name: string;
  step: number;
  policy: GatePolicy | null;
  config?: { safeModeStrategy: SafeModeStrategy; safeModeMaxRps: number };
  lastSyncAt: number | null;
  calls: GateCall[];
}

interface VectorFile<T> {
  version: number;
  cases: T[];
}

export const GATE_CASES = (JSON.parse(gateText) as VectorFile<GateCase>).cases;
export const HISTOGRAM_CASES = (JSON.parse(histogramText) as VectorFile<Record<string, unknown> & { kind: string; name: string }>).cases;
export interface ReflexStep {
  now: number;
  pulses: WindowPulse[];
  expect: {
    globalMaxWeight: number | null;
    tagMaxWeights: Record<string, number | null>;
    applied: string[];
    events: Array<["fired" | "cleared", string]>;
  };
}

export interface ReflexCase {
  name: string;
  rules: EngineRule[];
  tags: Record<string, TagConfig>;
  windowSeconds?: number;
  initialStates?: Record<string, RuleState>;
  steps: ReflexStep[];
}

export const REFLEX_CASES = (JSON.parse(reflexText) as VectorFile<ReflexCase>).cases;

export interface PolicyCase {
  name: string;
  input: unknown;
  valid: boolean;
  policy?: Record<string, unknown>;
  path?: string;
}

export const POLICY_CASES = (JSON.parse(policyText) as { description: string; cases: PolicyCase[] }).cases;

/** What one policy parser made of an input: the normalized policy, or the first path at fault. */
export type PolicyOutcome = { valid: true; policy: unknown } | { valid: false; path: string };

/**
 * Own enumerable keys only, in sorted order: a prototype-less tag map and the
 * vector's own `__proto__` key compare as what they are on the wire.
 */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The case's mismatch with a parser's outcome, or null when they agree. */
export function policyMismatch(c: PolicyCase, got: PolicyOutcome): string | null {
  if (got.valid !== c.valid)
    return `expected ${c.valid ? "valid" : `invalid at ${c.path}`}, got ${got.valid ? "valid" : `invalid at ${got.path}`}`;
  if (got.valid) {
    const expected = canonical(c.policy);
    const actual = canonical(got.policy);
    return expected === actual ? null : `expected policy ${expected.slice(0, 300)}, got ${actual.slice(0, 300)}`;
  }
  return got.path === c.path ? null : `expected invalid at ${c.path}, got invalid at ${got.path}`;
}

/**
 * A copy of a case broken on purpose: the verdict flipped, or (`detail`) the
 * same verdict with another normalized policy or another path. A runner that
 * passes it is broken.
 */
export function brokenPolicyCase(c: PolicyCase, detail = false): PolicyCase {
  const name = `${c.name} (deliberately broken)`;
  if (detail) {
    return c.valid
      ? { name, input: c.input, valid: true, policy: { ...c.policy, version: Number(c.policy?.version ?? 0) + 1 } }
      : { name, input: c.input, valid: false, path: `${c.path ?? ""}.x` };
  }
  return c.valid ? { name, input: c.input, valid: false, path: "version" } : { name, input: c.input, valid: true, policy: {} };
}

export const HMAC_CASES = (
  JSON.parse(hmacText) as VectorFile<{ name: string; body: string; timestamp: string; secretKey: string; expect: string }>
).cases;

/** token-exchange.json: the signature of `POST /v1/auth/token` is the pulse HMAC over `prefix + body`. */
export const TOKEN_EXCHANGE_VECTORS = JSON.parse(tokenExchangeText) as {
  prefix: string;
  cases: Array<{ name: string; body: string; timestamp: string; secretKey: string; signed: string; expect: string }>;
};

/** A vector weight as a number: the strings stand for what JSON cannot hold. */
export function vectorNumber(value: number | string): number {
  switch (value) {
    case "NaN":
      return Number.NaN;
    case "Infinity":
      return Number.POSITIVE_INFINITY;
    case "-Infinity":
      return Number.NEGATIVE_INFINITY;
    case "-0":
      return -0;
    default:
      return typeof value === "number" ? value : Number(value);
  }
}

/** One implementation under test: a fresh gate per case, then its calls in order. */
export interface GateUnderTest {
  call(now: number, tag: string | undefined, weight: number | undefined): GateResult;
}
export type GateFactory = (c: GateCase) => GateUnderTest;

export interface Mismatch {
  index: number;
  call: GateCall;
  got: GateResult;
}

/** Runs one case and returns every call whose result differs from the vector. */
export function runGateCase(c: GateCase, factory: GateFactory): Mismatch[] {
  const gate = factory(c);
  const mismatches: Mismatch[] = [];
  c.calls.forEach((call, index) => {
    const got = gate.call(call.now, call.tag, call.weight === undefined ? undefined : vectorNumber(call.weight));
    if (got.allowed !== call.expect.allowed || got.reason !== call.expect.reason) {
      mismatches.push({ index, call, got: { allowed: got.allowed, reason: got.reason } });
    }
  });
  return mismatches;
}

/** A copy of a case with one expectation flipped: a runner that cannot fail on it is broken. */
export function brokenCopy(c: GateCase, callIndex = 0): GateCase {
  const calls = c.calls.map((call, i) => (i === callIndex ? { ...call, expect: { ...call.expect, allowed: !call.expect.allowed } } : call));
  return { ...c, name: `${c.name} (deliberately broken)`, calls };
}

/** Relative comparison for quantiles (see vectors/README.md). */
export function closeTo(actual: number | null, expected: number | null, relative = 1e-9): boolean {
  if (actual === null || expected === null) return actual === expected;
  if (actual === expected) return true;
  return Math.abs(actual - expected) <= relative * Math.max(Math.abs(expected), Number.MIN_VALUE);
}

/** `decide(policy, state, now, tag, weight)` on the wire policy, one state per case. */
export const decideFactory: GateFactory = (c) => {
  const state = newGateState({ ...c.config, lastSyncAt: c.lastSyncAt });
  return { call: (now, tag, weight) => decide(c.policy, state, now, tag, weight) };
};

/** The hot-path gate with per-tag slots and counters. */
export const localGateFactory: GateFactory = (c) => {
  const local = new LocalGate(c.config);
  if (c.policy !== null && c.lastSyncAt !== null) local.update(c.policy, c.lastSyncAt);
  return { call: (now, tag, weight) => local.gate(tag, weight, now) };
};

/** Runs a case's steps in order, carrying rule states; returns the mismatches. */
/** How a case's window is merged: `mergeWindow` itself, or another route to the same stats. */
export type WindowMerge = (
  pulses: ReflexCase["steps"][number]["pulses"],
  now: number,
  windowSeconds: number | undefined,
  rules: ReflexCase["rules"],
) => WindowStats;

export function runReflexCase(c: ReflexCase, merge: WindowMerge = (pulses, now, w) => mergeWindow(pulses, now, w)): string[] {
  let states: Record<string, RuleState> = c.initialStates ?? {};
  const mismatches: string[] = [];
  c.steps.forEach((step, i) => {
    const stats = merge(step.pulses, step.now, c.windowSeconds, c.rules);
    const out = evaluateReflexes({ rules: c.rules, tags: c.tags, stats, states, now: step.now });
    states = out.states;
    const got = {
      globalMaxWeight: out.globalMaxWeight,
      // Key order carries no meaning on the wire; the vectors list tags alphabetically.
      tagMaxWeights: Object.fromEntries(Object.entries(out.tagMaxWeights).sort(([a], [b]) => (a < b ? -1 : 1))),
      applied: out.applied,
      events: out.events.map((e) => [e.kind, e.ruleId]),
    };
    if (JSON.stringify(got) !== JSON.stringify(step.expect)) {
      mismatches.push(`step ${i}: expected ${JSON.stringify(step.expect)}, got ${JSON.stringify(got)}`);
    }
  });
  return mismatches;
}
