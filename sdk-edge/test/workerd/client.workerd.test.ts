/**
 * The edge client inside workerd: constructed at module scope (where workerd
 * refuses randomness and I/O, "Disallowed operation called within global
 * scope"), then gating and syncing inside tests against the Node SDK's
 * stand-in control plane on 127.0.0.1 (token exchange, signature-verified
 * pulses, policy reads with ETags).
 */
import { describe, expect, inject, it, vi } from "vitest";
import { WaitState, type WaitStateError } from "@waitstate/edge";
import * as shipped from "../../dist/protocol/src/lifecycle.js";
import {
  CLIENT_CASES,
  FUNCTION_CASES,
  TOKEN_CASES,
  functionsOf,
  runClientCase,
  runFunctionCase,
  runTokenCase,
} from "../../../protocol/test/lifecycle-vectors.js";

const target = inject("clientControlPlane");
const errors: WaitStateError[] = [];
// Module scope, as a Worker writes it: nothing random, no I/O, no timer happens here.
const ws = new WaitState({
  baseUrl: target.url,
  publishKey: target.publishKey,
  secretKey: target.secretKey,
  onError: (e) => errors.push(e),
});

describe("WaitState in workerd", () => {
  it("was constructed at module scope without an instance id, a request or a policy", () => {
    expect(navigator.userAgent).toBe("Cloudflare-Workers");
    expect(ws.status()).toMatchObject({ instanceId: null, synced: false, pendingPulses: 0 });
  });

  it("construction draws no random number and makes no request (what workerd forbids at global scope)", () => {
    const uuid = vi.spyOn(crypto, "randomUUID");
    const random = vi.spyOn(Math, "random");
    const fetchSpy = vi.spyOn(globalThis, "fetch");
    const other = new WaitState({ baseUrl: target.url, publishKey: "pk", secretKey: "sk" });
    other.gate("free");
    expect(uuid).not.toHaveBeenCalled();
    expect(random).not.toHaveBeenCalled();
    expect(fetchSpy).not.toHaveBeenCalled();
    vi.restoreAllMocks();
  });

  it("gates before the first sync (bootstrap), then by the policy the sync brought", async () => {
    expect(ws.gate("free")).toEqual({ allowed: true, reason: "allowed" });
    ws.reportLatency(12, "free");
    ws.report("queue_depth", 4, "free");
    await ws.sync();
    expect(errors).toEqual([]);
    expect(ws.status()).toMatchObject({ synced: true, authenticated: true, pendingPulses: 0 });
    expect(ws.instanceId).toMatch(/^edge-[0-9a-f-]{36}$/);
    expect(ws.gate("free")).toEqual({ allowed: false, reason: "tag_blocked" });
    expect(ws.gate("pro", 11)).toEqual({ allowed: false, reason: "over_weight" });
    expect(ws.gate("pro", 2)).toEqual({ allowed: true, reason: "allowed" });
  });

  it("sync() when nothing is due sends nothing", async () => {
    const fetchSpy = vi.spyOn(globalThis, "fetch");
    await ws.sync();
    await ws.sync();
    expect(fetchSpy).not.toHaveBeenCalled();
    vi.restoreAllMocks();
  });

  it("never rejects when the control plane is unreachable, and keeps the calls for later", async () => {
    const down = new WaitState({
      baseUrl: "http://127.0.0.1:9", // discard port: refused
      publishKey: "pk",
      secretKey: "sk",
      requestTimeoutMs: 2000,
      onError: (e) => errors.push(e),
    });
    errors.length = 0;
    down.gate("free");
    down.gate("free");
    await expect(down.sync()).resolves.toBeUndefined();
    expect(down.status()).toMatchObject({ synced: false, pendingPulses: 1, consecutiveFailures: 1 });
    expect(new Set(errors.map((e) => e.code))).toEqual(new Set(["AUTH_FAILED", "PULSE_FAILED"]));
  });
});

describe("lifecycle.json in workerd, against the rules as @waitstate/edge ships them", () => {
  it("every case", () => {
    const functions = functionsOf(shipped);
    const mismatches = [
      ...FUNCTION_CASES.flatMap((c) => runFunctionCase(c, functions).map((m) => `${c.name}: ${m}`)),
      ...CLIENT_CASES.flatMap((c) => runClientCase(c, shipped).map((m) => `${c.name}: ${m}`)),
      ...TOKEN_CASES.flatMap((c) => runTokenCase(c, shipped).map((m) => `${c.name}: ${m}`)),
    ];
    expect(mismatches).toEqual([]);
    expect(FUNCTION_CASES.length + CLIENT_CASES.length + TOKEN_CASES.length).toBeGreaterThan(50);
  });
});

describe("the README's Worker", () => {
  it("runs in workerd: a cold isolate waits for its first policy, then gates, times and syncs", async () => {
    const { default: worker } = await import("./readme-worker.js");
    const env = { WAITSTATE_URL: target.url, WAITSTATE_PUBLISH_KEY: target.publishKey, WAITSTATE_SECRET_KEY: target.secretKey };
    const pending: Promise<unknown>[] = [];
    const ctx = { waitUntil: (p: Promise<unknown>) => void pending.push(p) };
    // "free" is blocked by the control plane's policy: the very first request already knows it (ready()).
    const denied = await worker.fetch(new Request(`${target.url}/origin`, { headers: { "x-plan": "free" } }), env, ctx);
    expect(denied.status).toBe(429);
    expect(await denied.json()).toEqual({ error: { code: "RATE_LIMITED", message: "tag_blocked" } });
    // "pro" is allowed and forwarded (the stand-in answers 404 for a path it does not serve).
    const forwarded = await worker.fetch(new Request(`${target.url}/origin`, { headers: { "x-plan": "pro" } }), env, ctx);
    expect(forwarded.status).toBe(404);
    await Promise.all(pending);
  });
});
