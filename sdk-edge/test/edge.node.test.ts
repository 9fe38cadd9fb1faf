import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import * as edge from "@waitstate/edge";
import { edgeVectorSuite } from "./edge-cases.js";

// The vectors' expectations, and Node's own createHmac, must agree with the wasm signer.
edgeVectorSuite("node", edge, (c) => {
  const node = createHmac("sha256", c.secretKey).update(`${c.body}.${c.timestamp}`).digest("hex");
  expect(node).toBe(c.expect);
  return c.expect;
});

const T = 1_740_000_000_000;

describe("EdgeGate in Node", () => {
  it("keeps the last good policy and reports a bad one through onError", () => {
    const errors: edge.EdgeError[] = [];
    const g = new edge.EdgeGate({ onError: (e) => errors.push(e) });
    expect(g.update({ tagMaxWeights: { free: 0 } }, T)).toBe(true);
    for (const bad of ["{not json", "[]", '{"tagMaxWeights":{"free":-1}}', '{"status":"paused"}', '{"globalMaxWeight":"5"}', '{"leaseDurationSeconds":0}']) {
      expect(g.update(bad, T)).toBe(false);
    }
    expect(errors).toHaveLength(6);
    expect(errors.every((e) => e.code === "INVALID_POLICY")).toBe(true);
    expect(errors[2]!.message).toContain("tagMaxWeights.free");
    expect(g.gate("free", 1, T)).toEqual({ allowed: false, reason: "tag_blocked" });
    expect(g.policy).toEqual({ tagMaxWeights: { free: 0 } });
  });

  it("accepts the policy as JSON text", () => {
    const g = new edge.EdgeGate();
    expect(g.update('{"version":3,"globalMaxWeight":2,"tagMaxWeights":{"pro":null}}', T)).toBe(true);
    expect(g.gate("x", 3, T).reason).toBe("over_weight");
    expect(g.gate("pro", 1e9, T).reason).toBe("allowed");
  });

  it("counts calls and denials per tag and resets on take", () => {
    const g = new edge.EdgeGate();
    g.update({ tagMaxWeights: { free: 0 }, globalMaxWeight: 5 }, T);
    g.gate("free", 1, T);
    g.gate("pro", 6, T);
    g.gate("pro", 1, T);
    g.gate(undefined, 1, T);
    g.gate("", 1, T);
    expect(g.takeCounts()).toEqual({
      usageDelta: 5,
      bouncedUnits: 2,
      tags: [
        { tag: "free", count: 1, bounced: 1 },
        { tag: "pro", count: 2, bounced: 1 },
        { tag: "__default__", count: 2, bounced: 0 },
      ],
    });
    expect(g.takeCounts()).toEqual({ usageDelta: 0, bouncedUnits: 0, tags: [] });
  });

  it("keeps tag ids stable across policy reloads", () => {
    const g = new edge.EdgeGate();
    g.update({ tagMaxWeights: { a: 0 } }, T);
    expect(g.gate("b", 1, T).allowed).toBe(true);
    g.update({ tagMaxWeights: { b: 0 } }, T);
    expect(g.gate("b", 1, T).reason).toBe("tag_blocked");
    expect(g.gate("a", 1, T).reason).toBe("allowed");
  });

  it("never throws from gate(), whatever it is given", () => {
    const g = new edge.EdgeGate();
    g.update({ globalMaxWeight: 1 }, T);
    const odd: unknown[] = [null, "5", {}, Symbol.iterator, 10n];
    for (const w of odd) expect(g.gate("x", w as number, T).allowed).toBe(true); // non-numbers weigh 1
    expect(g.gate("x", Number.NaN, Number.NaN).allowed).toBe(true);
  });

  it("gates tags beyond the table's capacity by the global limit and counts them", () => {
    const errors: string[] = [];
    const g = new edge.EdgeGate({ onError: (e) => errors.push(e.message) });
    g.update({ globalMaxWeight: 2 }, T);
    for (let i = 0; i < 4100; i++) g.gate(`t${i}`, 3, T);
    const counts = g.takeCounts();
    expect(counts.usageDelta).toBe(4100);
    expect(counts.bouncedUnits).toBe(4100);
    expect(counts.tags.find((t) => t.tag === edge.OVERFLOW_TAG)).toEqual({ tag: edge.OVERFLOW_TAG, count: 4, bounced: 4 });
    expect(errors).toHaveLength(1);
  });

  it("refuses an invalid safe-mode configuration at construction", () => {
    expect(() => new edge.EdgeGate({ safeModeStrategy: "closed" as never })).toThrow(edge.EdgeError);
    expect(() => new edge.EdgeGate({ safeModeMaxRps: -1 })).toThrow(/safeModeMaxRps/);
  });

  it("markSynced restarts the lease without a new policy (a 304)", () => {
    const g = new edge.EdgeGate();
    g.update({ leaseDurationSeconds: 1, globalMaxWeight: 0 }, T);
    expect(g.gate("x", 1, T + 1500).reason).toBe("lease_expired");
    g.markSynced(T + 1500);
    expect(g.gate("x", 1, T + 1600).reason).toBe("global_block");
  });
});

describe("init(moduleOrBytes)", () => {
  const bytes = readFileSync(new URL("../dist/waitstate.wasm", import.meta.url));

  it("is already initialised in Node", () => {
    expect(edge.isInitialized()).toBe(true);
  });

  it("accepts bytes (Uint8Array and ArrayBuffer) and a WebAssembly.Module", async () => {
    await edge.init(new Uint8Array(bytes));
    expect(new edge.EdgeGate().gate().allowed).toBe(true);
    await edge.init(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    expect(edge.gate({ killSignal: true }).reason).toBe("kill_signal");
    await edge.init(new WebAssembly.Module(bytes));
    expect(edge.sign_pulse("{}", 1, "k")).toBe(createHmac("sha256", "k").update("{}.1").digest("hex"));
  });

  it("refuses bytes that are not wasm", async () => {
    await expect(edge.init(new Uint8Array([1, 2, 3]))).rejects.toThrow();
  });

  it("loads through the default entry after init", async () => {
    const defaultEntry = await import("../dist/index.js");
    await defaultEntry.init(bytes);
    expect(defaultEntry.gate({ tagMaxWeights: { free: 0 } }, "free")).toEqual({ allowed: false, reason: "tag_blocked" });
  });
});
