import { describe, expect, inject, it } from "vitest";
import * as edge from "@waitstate/edge";
import { edgeVectorSuite } from "../edge-cases.js";

// No node:crypto here: the expected signatures are the vectors', produced by Node's createHmac.
edgeVectorSuite("workerd", edge, (c) => c.expect);

describe("@waitstate/edge in workerd", () => {
  it("runs inside workerd with the module-imported wasm", () => {
    expect(navigator.userAgent).toBe("Cloudflare-Workers");
    expect(edge.isInitialized()).toBe(true);
  });

  it("init() with no argument is a no-op: the module import already loaded the module", async () => {
    await expect(edge.init()).resolves.toBeUndefined();
    expect(new edge.EdgeGate().gate("x", 1, 1_740_000_000_000)).toEqual({ allowed: true, reason: "allowed" });
  });

  it("builds a pulse whose signature WebCrypto verifies", async () => {
    const g = new edge.EdgeGate();
    g.update({ tagMaxWeights: { free: 0 } }, 1_740_000_000_000);
    g.gate("free", 1, 1_740_000_000_000);
    const p = g.pulse({ instanceId: "i", publishKey: "pk", secretKey: "sk", now: 1_740_000_000_500 });
    const key = await crypto.subtle.importKey("raw", new TextEncoder().encode("sk"), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${p.body}.${p.timestamp}`)));
    expect(p.signature).toBe([...mac].map((b) => b.toString(16).padStart(2, "0")).join(""));
    expect(JSON.parse(p.body)).toMatchObject({ usageDelta: 1, bouncedUnits: 1, ts: 1_740_000_000_500 });
  });

  it("refuses to compile wasm from bytes at run time, which is why the module import exists", async () => {
    await expect(WebAssembly.compile(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]))).rejects.toThrow();
  });
});

// workerd logs "Uncaught (in promise) … Network connection lost" for each dropped connection even
// though sendPulse catches the fetch's rejection (it does so for any caught fetch): expected noise.
// A call that expects an answer waits for it (a short timeoutMs cut answers the script counted on
// when the machine was loaded); only the call that meets the hang has a deadline, long enough for
// its request to reach the server.
describe("EdgeGate.sendPulse in workerd, against a scripted control plane (node:http)", { timeout: 60_000 }, () => {
  const url = inject("controlPlaneUrl");
  const options = { instanceId: "edge-workerd", publishKey: "pk_fake", secretKey: "sk_fake", timeoutMs: 50_000 };
  const HANG_MS = 2_500;
  const script = async (steps: string[]) => {
    const res = await fetch(`${url}/__script`, { method: "POST", body: JSON.stringify(steps) });
    expect(res.status).toBe(204);
  };
  const state = async () =>
    (await (await fetch(`${url}/__state`)).json()) as {
      counted: number;
      seen: Array<{ step: string; body: string; counted: boolean; signatureValid: boolean }>;
    };

  it("keeps the pulse through a 500, a hang (timeoutMs), a dropped connection and a lost answer: every call counted once", async () => {
    const steps = ["500", "hang", "drop", "count-then-drop", "ok", "ok"];
    await script(steps);
    const errors: edge.EdgeError[] = [];
    const g = new edge.EdgeGate({ onError: (e) => errors.push(e) });
    let calls = 0;
    const results: boolean[] = [];
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 3 + round; i++, calls++) g.gate(i % 2 ? "free" : "pro");
      results.push(await g.sendPulse(url, steps[round] === "hang" ? { ...options, timeoutMs: HANG_MS } : options));
    }
    expect(results).toEqual([false, false, false, false, true]);
    expect(g.pendingPulses).toBe(0);
    expect(g.etag).toBe('"policy-7"');
    const { counted, seen } = await state();
    expect(seen.map((s) => s.step)).toEqual(["500", "hang", "drop", "count-then-drop", "ok", "ok"]);
    expect(seen.every((s) => s.signatureValid)).toBe(true);
    expect(new Set(seen.slice(0, 5).map((s) => s.body)).size).toBe(1);
    expect(seen.filter((s) => s.counted).map((s) => s.step)).toEqual(["count-then-drop", "ok"]);
    expect(counted).toBe(calls);
    expect(errors.map((e) => e.code)).toEqual(["PULSE_FAILED", "PULSE_FAILED", "PULSE_FAILED", "PULSE_FAILED"]);
    expect(errors[1]!.message).toMatch(new RegExp(`no answer within ${HANG_MS} ms`));
  });

  it("drops a pulse the control plane refuses with a 400 and reports PULSE_REJECTED", async () => {
    await script(["400", "ok"]);
    const errors: edge.EdgeError[] = [];
    const g = new edge.EdgeGate({ onError: (e) => errors.push(e) });
    g.gate("free");
    expect(await g.sendPulse(url, options)).toBe(false);
    expect(g.pendingPulses).toBe(0);
    expect(errors.map((e) => e.code)).toEqual(["PULSE_REJECTED"]);
    g.gate("free");
    g.gate("x".repeat(129));
    expect(await g.sendPulse(url, options)).toBe(true);
    const { counted, seen } = await state();
    expect(counted).toBe(2);
    expect(JSON.parse(seen[1]!.body).tagMetrics).toEqual([
      { tag: "free", count: 1, bounced: 0 },
      { tag: "__other__", count: 1, bounced: 0 },
    ]);
  });
});
