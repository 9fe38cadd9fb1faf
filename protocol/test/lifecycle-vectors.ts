/**
 * Loads protocol/vectors/lifecycle.json and runs it against an implementation
 * of the lifecycle rules (protocol/src/lifecycle.ts by default). Each runner
 * returns the mismatches, so a test can also show it fails on a broken vector.
 */
import lifecycleText from "../vectors/lifecycle.json?raw";
import * as rules from "../src/lifecycle.js";
import type { Due, LifecycleEvent, LifecycleState, TokenEvent, TokenState } from "../src/lifecycle.js";

export interface FunctionCase {
  name: string;
  fn: string;
  args: Record<string, unknown>;
  expect: unknown;
}

export type ClientStep =
  | { event: LifecycleEvent; expect: { actions: string[]; state?: Partial<LifecycleState> } }
  | { due: number; expect: Partial<Due> & { wakeAt?: number | null } };

export interface ClientCase {
  name: string;
  pulseIntervalMs: number;
  /** Fields that differ from the initial state. */
  state?: Partial<LifecycleState>;
  steps: ClientStep[];
}

export type TokenStep =
  | { event: TokenEvent; expect: { state: Partial<TokenState>; usable?: Array<[number, boolean]> } }
  | { due: number; expect: boolean };

export interface TokenCase {
  name: string;
  state?: TokenState;
  steps: TokenStep[];
}

const file = JSON.parse(lifecycleText) as { version: number; functions: FunctionCase[]; client: ClientCase[]; token: TokenCase[] };
export const FUNCTION_CASES = file.functions;
export const CLIENT_CASES = file.client;
export const TOKEN_CASES = file.token;

/** The vector's named arguments, in each function's parameter order. */
type Args = Record<string, never>;
const n = (a: Args, k: string) => a[k] as unknown as number;

/** An implementation of the rules: this module, or the same source as compiled into an SDK's build. */
export type Rules = typeof rules;

/** The vectors' functions, called on `impl`. */
export const functionsOf = (impl: Rules): Record<string, (a: Args) => unknown> => ({
  pulseDelayMs: (a) => impl.pulseDelayMs(n(a, "intervalMs"), n(a, "random")),
  pollDelayMs: (a) => impl.pollDelayMs(n(a, "intervalMs"), n(a, "random")),
  backoffMs: (a) => impl.backoffMs(n(a, "intervalMs"), n(a, "leaseMs"), n(a, "failures"), n(a, "random")),
  policyPacing: (a) => impl.policyPacing(a.policy as unknown as rules.LifecyclePolicy),
  classifyPulseAnswer: (a) =>
    impl.classifyPulseAnswer(a.status as unknown as number | null, a.counted as unknown as boolean, a.policyValid as unknown as boolean),
  pulseLeavesOutbox: (a) => impl.pulseLeavesOutbox(a.outcome as unknown as rules.PulseOutcome),
  classifyPollAnswer: (a) => impl.classifyPollAnswer(a.status as unknown as number | null, a.policyValid as unknown as boolean),
  tokenRefreshDelayMs: (a) => impl.tokenRefreshDelayMs(n(a, "expiresAt"), n(a, "now")),
  tokenRetryDelayMs: (a) => impl.tokenRetryDelayMs(n(a, "failures"), n(a, "random")),
  roundMs: (a) => impl.roundMs(n(a, "ms")),
});
export const FUNCTIONS = functionsOf(rules);

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export function runFunctionCase(c: FunctionCase, functions = FUNCTIONS): string[] {
  const f = functions[c.fn];
  if (f === undefined) return [`unknown function ${c.fn}`];
  const got = f(c.args as Args);
  return same(got, c.expect)
    ? []
    : [`${c.fn}(${JSON.stringify(c.args)}): expected ${JSON.stringify(c.expect)}, got ${JSON.stringify(got)}`];
}

/** Fields of `got` that differ from the `expected` subset. */
function diff(where: string, got: object, expected: object): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(expected)) {
    const actual = (got as Record<string, unknown>)[key];
    if (!same(actual, value)) out.push(`${where}: ${key} expected ${JSON.stringify(value)}, got ${JSON.stringify(actual)}`);
  }
  return out;
}

export function runClientCase(c: ClientCase, impl: Rules = rules): string[] {
  let state: LifecycleState = { ...impl.initialLifecycle(c.pulseIntervalMs), ...c.state };
  const mismatches: string[] = [];
  c.steps.forEach((s, i) => {
    if ("event" in s) {
      const out = impl.step(state, s.event);
      state = out.state;
      if (!same(out.actions, s.expect.actions))
        mismatches.push(
          `step ${i} (${s.event.type}): actions expected ${JSON.stringify(s.expect.actions)}, got ${JSON.stringify(out.actions)}`,
        );
      mismatches.push(...diff(`step ${i} (${s.event.type})`, state, s.expect.state ?? {}));
    } else {
      const got = { ...impl.due(state, s.due), wakeAt: impl.nextWakeAt(state) };
      mismatches.push(...diff(`step ${i} (due at ${s.due})`, got, s.expect));
    }
  });
  return mismatches;
}

export function runTokenCase(c: TokenCase, impl: Rules = rules): string[] {
  let state: TokenState = c.state ?? impl.initialToken();
  const mismatches: string[] = [];
  c.steps.forEach((s, i) => {
    if ("event" in s) {
      state = impl.stepToken(state, s.event);
      mismatches.push(...diff(`step ${i} (${s.event.type})`, state, s.expect.state));
      for (const [now, usable] of s.expect.usable ?? []) {
        if (impl.tokenUsable(state, now) !== usable) mismatches.push(`step ${i}: usable at ${now} expected ${usable}`);
      }
    } else if (impl.tokenDue(state, s.due) !== s.expect) {
      mismatches.push(`step ${i}: due at ${s.due} expected ${s.expect}`);
    }
  });
  return mismatches;
}
