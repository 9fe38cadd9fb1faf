/**
 * protocol/vectors/lifecycle.json against the lifecycle rules exactly as
 * @waitstate/edge ships them: the module its build carries
 * (dist/protocol/src/lifecycle.js) and its client imports, not the source.
 * The client itself takes every decision from these functions (see
 * src/client.ts: due, step, stepToken); client.node.test.ts checks that it
 * acts on them (nothing when nothing is due, reads on the read delay,
 * suspended and cap_exceeded pacing).
 */
import { describe, expect, it } from "vitest";
import * as shipped from "../dist/protocol/src/lifecycle.js";
import {
  CLIENT_CASES,
  FUNCTION_CASES,
  TOKEN_CASES,
  functionsOf,
  runClientCase,
  runFunctionCase,
  runTokenCase,
} from "../../protocol/test/lifecycle-vectors.js";

const functions = functionsOf(shipped);

describe("lifecycle.json against @waitstate/edge's build of the rules", () => {
  it.each(FUNCTION_CASES.map((c) => [c.name, c] as const))("function: %s", (_name, c) => {
    expect(runFunctionCase(c, functions)).toEqual([]);
  });

  it.each(CLIENT_CASES.map((c) => [c.name, c] as const))("client: %s", (_name, c) => {
    expect(runClientCase(c, shipped)).toEqual([]);
  });

  it.each(TOKEN_CASES.map((c) => [c.name, c] as const))("JWT: %s", (_name, c) => {
    expect(runTokenCase(c, shipped)).toEqual([]);
  });

  it("fails on a deliberately broken vector", () => {
    const c = structuredClone(CLIENT_CASES.find((k) => k.name.startsWith("suspended:"))!);
    const policyStep = c.steps.find((s) => "event" in s && s.event.type === "policy") as { expect: { actions: string[] } };
    policyStep.expect.actions.pop();
    expect(runClientCase(c, shipped)).toHaveLength(1);
  });
});
