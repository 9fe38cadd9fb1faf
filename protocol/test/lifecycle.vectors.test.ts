import { describe, expect, it } from "vitest";
import type { LifecycleAction, LifecycleEvent, TokenEvent } from "../src/lifecycle.js";
import {
  CLIENT_CASES,
  FUNCTION_CASES,
  FUNCTIONS,
  TOKEN_CASES,
  runClientCase,
  runFunctionCase,
  runTokenCase,
  type ClientCase,
  type TokenCase,
} from "./lifecycle-vectors.js";

const EVENTS: Array<LifecycleEvent["type"]> = [
  "start",
  "pulse_started",
  "pulse_done",
  "poll_due",
  "poll_done",
  "policy",
  "not_modified",
  "lease_check",
  "resume",
  "stop",
];
const ACTIONS: LifecycleAction[] = ["pulse", "poll", "install", "confirm", "safe_mode_entered", "safe_mode_ended", "stand_down", "resumed"];
const TOKEN_EVENTS: Array<TokenEvent["type"]> = ["token_start", "token_issued", "token_failed", "token_rejected"];

describe("lifecycle.json conformance vectors", () => {
  it("pins every rule: each function, event, action and pulse/poll outcome appears", () => {
    expect(new Set(FUNCTION_CASES.map((c) => c.fn))).toEqual(new Set(Object.keys(FUNCTIONS)));
    const steps = CLIENT_CASES.flatMap((c) => c.steps);
    const events = new Set(steps.flatMap((s) => ("event" in s ? [s.event.type] : [])));
    expect([...events].sort()).toEqual([...EVENTS].sort());
    const actions = new Set(steps.flatMap((s) => ("event" in s ? s.expect.actions : [])));
    expect([...actions].sort()).toEqual([...ACTIONS].sort());
    const tokenEvents = new Set(TOKEN_CASES.flatMap((c) => c.steps.flatMap((s) => ("event" in s ? [s.event.type] : []))));
    expect([...tokenEvents].sort()).toEqual([...TOKEN_EVENTS].sort());
    const outcomes = (fn: string) => new Set(FUNCTION_CASES.filter((c) => c.fn === fn).map((c) => c.expect));
    expect(outcomes("classifyPulseAnswer")).toEqual(new Set(["policy", "counted", "not_delivered", "rejected", "retry"]));
    expect(outcomes("classifyPollAnswer")).toEqual(new Set(["policy", "not_modified", "invalid_policy", "unauthorized", "failed"]));
    const statuses = new Set(
      CLIENT_CASES.flatMap((c) => c.steps.flatMap((s) => ("event" in s && s.event.type === "policy" ? [s.event.policy.status] : []))),
    );
    expect([...statuses].sort()).toEqual(["cap_exceeded", "ok", "suspended"]);
  });

  describe("functions", () => {
    it.each(FUNCTION_CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
      expect(runFunctionCase(c)).toEqual([]);
    });
  });

  describe("client state machine", () => {
    it.each(CLIENT_CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
      expect(runClientCase(c)).toEqual([]);
    });
  });

  describe("JWT", () => {
    it.each(TOKEN_CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
      expect(runTokenCase(c)).toEqual([]);
    });
  });

  describe("fails on a deliberately broken vector", () => {
    it("a function case", () => {
      const c = FUNCTION_CASES.find((f) => f.fn === "backoffMs")!;
      expect(runFunctionCase({ ...c, expect: (c.expect as number) + 1 })).toHaveLength(1);
    });

    it("a client step's state and its actions", () => {
      const c = CLIENT_CASES.find((k) => k.name.startsWith("suspended:"))!;
      const i = c.steps.findIndex((s) => "event" in s && s.event.type === "policy");
      const broken = (change: (expect: { actions: string[]; state?: Record<string, unknown> }) => void): ClientCase => {
        const copy = structuredClone(c);
        change((copy.steps[i] as { expect: { actions: string[]; state?: Record<string, unknown> } }).expect);
        return copy;
      };
      expect(runClientCase(broken((e) => (e.state!.leaseMs = 3600000)))).toHaveLength(1);
      expect(runClientCase(broken((e) => e.actions.pop()))).toHaveLength(1);
    });

    it("a due check", () => {
      const c = structuredClone(CLIENT_CASES.find((k) => k.name.startsWith("start:"))!);
      const last = c.steps.at(-1) as { expect: Record<string, unknown> };
      last.expect.pulse = false;
      expect(runClientCase(c)).toHaveLength(1);
    });

    it("a token step", () => {
      const c: TokenCase = structuredClone(TOKEN_CASES[0]!);
      const s = c.steps.find((x) => "event" in x && x.event.type === "token_issued") as { expect: { state: Record<string, unknown> } };
      s.expect.state.refreshAt = (s.expect.state.refreshAt as number) + 120_000;
      expect(runTokenCase(c)).toHaveLength(1);
    });
  });
});
