import { createHmac } from "node:crypto";
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
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
    for (const bad of [
      "{not json",
      "[]",
      '{"tagMaxWeights":{"free":-1}}',
      '{"status":"paused"}',
      '{"globalMaxWeight":"5"}',
      '{"leaseDurationSeconds":0}',
    ]) {
      expect(g.update(bad, T)).toBe(false);
    }
    expect(errors).toHaveLength(6);
    expect(errors.every((e) => e.code === "INVALID_POLICY")).toBe(true);
    expect(errors[2]!.message).toContain("tagMaxWeights.free");
    expect(g.gate("free", 1, T)).toEqual({ allowed: false, reason: "tag_blocked" });
    expect(g.policy).toEqual({
      version: 0,
      globalMaxWeight: null,
      tagMaxWeights: { free: 0 },
      killSignal: false,
      status: "ok",
      pulseInterval: 5000,
      leaseDurationSeconds: 60,
    });
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

describe("the build under test", () => {
  // These suites import the built package (dist/), as users do: make a stale build fail loudly.
  const hint = "stale build: run `node scripts/build-wasm.mjs && npx tsc -b sdk-edge` (or `npm run setup`) at the repo root";
  const mtime = (url: URL) => statSync(url).mtimeMs;

  it("sdk-edge was built (tsc -b) after its sources last changed", () => {
    // tsc -b leaves an unchanged output file's time alone, but always rewrites its build info.
    const src = new URL("../src/", import.meta.url);
    const newest = Math.max(...readdirSync(src).map((f) => mtime(new URL(f, src))));
    expect(mtime(new URL("../tsconfig.tsbuildinfo", import.meta.url)) >= newest, hint).toBe(true);
  });

  it("dist/waitstate.wasm is the committed module (sdk-edge/wasm/waitstate.wasm)", () => {
    const committed = readFileSync(new URL("../wasm/waitstate.wasm", import.meta.url));
    expect(readFileSync(new URL("../dist/waitstate.wasm", import.meta.url)).equals(committed), "run `npm run setup` at the repo root").toBe(
      true,
    );
  });
});

/** A wasm module exporting `ws_abi_version() -> i32` that answers `version`. */
function moduleWithAbi(version: number): WebAssembly.Module {
  const name = [...new TextEncoder().encode("ws_abi_version")];
  const bytes = [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...[0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f], // type: () -> i32
    ...[0x03, 0x02, 0x01, 0x00], // one function of that type
    ...[0x07, 4 + name.length, 0x01, name.length, ...name, 0x00, 0x00], // export it
    ...[0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, version, 0x0b], // body: i32.const version
  ];
  return new WebAssembly.Module(new Uint8Array(bytes));
}

describe("loading the wasm module", () => {
  const abiError = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      return e as edge.EdgeError;
    }
    throw new Error("no error");
  };

  it("a stale module (another ABI version) is refused with a typed error naming both versions", () => {
    const e = abiError(() => edge.initSync(moduleWithAbi(1)));
    expect(e).toBeInstanceOf(edge.EdgeError);
    expect(e.code).toBe("ABI_MISMATCH");
    expect(e.message).toContain(`ABI version ${edge.ABI_VERSION}, found ABI version 1`);
    expect(abiError(() => edge.initSync(moduleWithAbi(3))).message).toContain("found ABI version 3");
  });

  it("a foreign module (no ws_abi_version, or imports) is refused the same way", () => {
    const empty = new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
    const e = abiError(() => edge.initSync(empty));
    expect([e.code, e.message]).toEqual(["ABI_MISMATCH", expect.stringContaining("without ws_abi_version")]);
    // (import "env" "f" (func)): cannot be instantiated with no imports.
    const importing = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 2, 9, 1, 3, 0x65, 0x6e, 0x76, 1, 0x66, 0, 0]);
    expect(abiError(() => edge.initSync(new WebAssembly.Module(importing))).code).toBe("ABI_MISMATCH");
    // The module already loaded stays in use.
    expect(new edge.EdgeGate().gate("x", 1, T)).toEqual({ allowed: true, reason: "allowed" });
  });

  it("init() refuses non-wasm bytes with a typed error, and init() of a stale module rejects the same way", async () => {
    await expect(edge.init(new Uint8Array([1, 2, 3]))).rejects.toMatchObject({ name: "EdgeError", code: "WASM_ERROR" });
    await expect(edge.init(new Uint8Array(0))).rejects.toMatchObject({ code: "WASM_ERROR" });
    await expect(edge.init(moduleWithAbi(1))).rejects.toMatchObject({ code: "ABI_MISMATCH" });
    await expect(edge.init("waitstate.wasm" as never)).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
  });

  it("init() with no argument is a no-op where the module is already loaded (the node entry)", async () => {
    await expect(edge.init()).resolves.toBeUndefined();
    expect(edge.isInitialized()).toBe(true);
  });

  it("init() with no argument where nothing loaded the module rejects with NOT_INITIALIZED, not a raw CompileError", () => {
    // The default entry, in a fresh process: nothing has loaded the module there.
    const entry = new URL("../dist/sdk-edge/src/index.js", import.meta.url).href;
    const script = `import { init } from ${JSON.stringify(entry)};
try { await init(); console.log("resolved"); } catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }`;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" }).trim();
    const error = JSON.parse(out) as { name: string; code: string; message: string };
    expect(error).toMatchObject({ name: "EdgeError", code: "NOT_INITIALIZED" });
    expect(error.message).toContain("@waitstate/edge/waitstate.wasm");
  });
});

describe("EdgeGate hardening", () => {
  it("refuses inherited property names as status or strategy", () => {
    const errors: string[] = [];
    const g = new edge.EdgeGate({ onError: (e) => errors.push(e.message) });
    expect(g.update('{"status":"toString"}', T)).toBe(false);
    expect(g.update('{"status":"__proto__"}', T)).toBe(false);
    expect(errors).toHaveLength(2);
    expect(() => new edge.EdgeGate({ safeModeStrategy: "constructor" as never })).toThrow(edge.EdgeError);
    expect(() => new edge.EdgeGate({ safeModeMaxRps: "5" as never })).toThrow(edge.EdgeError);
  });

  it("a throwing onError makes neither update() nor gate() throw", () => {
    const g = new edge.EdgeGate({
      onError: () => {
        throw new Error("boom");
      },
    });
    expect(g.update("{nope", T)).toBe(false);
    for (let i = 0; i < 4100; i++) g.gate(`t${i}`, 1, T);
    expect(g.takeCounts().usageDelta).toBe(4100);
  });

  it("the pure gate() handles any number of distinct tags (no interning)", () => {
    for (let i = 0; i < 5000; i++) {
      const tag = `tag-${i}`;
      expect(edge.gate({ globalMaxWeight: 5, tagMaxWeights: { [tag]: 0 } }, tag)).toEqual({ allowed: false, reason: "tag_blocked" });
    }
    expect(edge.gate({ globalMaxWeight: 5, tagMaxWeights: { other: 0 } }, "tag-1", 6).reason).toBe("over_weight");
    expect(edge.gate({ tagMaxWeights: { __default__: 0 } }).reason).toBe("tag_blocked");
    expect(edge.gate({ tagMaxWeights: { __default__: 0 } }, "").reason).toBe("tag_blocked");
    expect(edge.gate('{"status":"suspended","killSignal":true}').reason).toBe("suspended");
    expect(edge.gate("{bad json")).toEqual({ allowed: true, reason: "allowed" });
    expect(edge.gate({ globalMaxWeight: -1 }, "x")).toEqual({ allowed: true, reason: "allowed" });
  });

  it("a policy with an entry for the empty tag is refused (a call's empty tag is __default__)", () => {
    const errors: string[] = [];
    const g = new edge.EdgeGate({ onError: (e) => errors.push(`${e.code} ${e.message}`) });
    expect(g.update({ tagMaxWeights: { __default__: 5, "": 0 } }, T)).toBe(false);
    expect(errors).toEqual([expect.stringMatching(/^INVALID_POLICY tagMaxWeights\.: invalid key/)]);
    expect(g.update({ tagMaxWeights: { __default__: 5 } }, T)).toBe(true);
    expect(g.gate("", 1, T).reason).toBe("allowed");
    expect(g.gate(undefined, 6, T).reason).toBe("over_weight");
    expect(edge.gate({ tagMaxWeights: { "": 0 } }, "").reason).toBe("allowed");
  });

  it("results are shared frozen objects", () => {
    const g = new edge.EdgeGate();
    g.update({ globalMaxWeight: 0 }, T);
    const a = g.gate("x", 1, T);
    expect(Object.isFrozen(a)).toBe(true);
    expect(g.gate("y", 1, T)).toBe(a);
  });
});

describe("pulses", () => {
  const opts = { instanceId: "i-1", siteId: "site-a", publishKey: "pk_test", secretKey: "sk_test", now: T };

  it("pulse() takes the counts and signs body + '.' + timestamp", () => {
    const g = new edge.EdgeGate();
    g.update({ tagMaxWeights: { free: 0 } }, T);
    g.gate("free", 1, T);
    g.gate("pro", 1, T);
    const p = g.pulse(opts);
    expect(JSON.parse(p.body)).toEqual({
      instanceId: "i-1",
      siteId: "site-a",
      usageDelta: 2,
      bouncedUnits: 1,
      metrics: { latency: 0, errors: 0 },
      tagMetrics: [
        { tag: "free", count: 1, bounced: 1 },
        { tag: "pro", count: 1, bounced: 0 },
      ],
      ts: T,
    });
    expect(p.signature).toBe(createHmac("sha256", "sk_test").update(`${p.body}.${T}`).digest("hex"));
    expect(p.headers).toMatchObject({
      "x-waitstate-id": "pk_test",
      "x-waitstate-timestamp": String(T),
      "x-waitstate-signature": p.signature,
    });
    expect(JSON.parse(g.pulse(opts).body).usageDelta).toBe(0);
  });

  it("pulse() names at most 512 tags and folds the rest into __other__", () => {
    const g = new edge.EdgeGate();
    for (let i = 0; i < 600; i++) g.gate(`t${i}`, 1, T);
    const body = JSON.parse(g.pulse(opts).body) as { usageDelta: number; tagMetrics: Array<{ tag: string; count: number }> };
    expect(body.tagMetrics).toHaveLength(512);
    expect(body.tagMetrics.reduce((n, t) => n + t.count, 0)).toBe(600);
    expect(body.tagMetrics.at(-1)).toEqual({ tag: edge.OVERFLOW_TAG, count: 89, bounced: 0 });
    // With the tag table full too, its overflow count is folded in, not lost.
    for (let i = 0; i < 4200; i++) g.gate(`u${i}`, 1, T);
    const full = JSON.parse(g.pulse(opts).body) as typeof body;
    expect(full.usageDelta).toBe(4200);
    expect(full.tagMetrics).toHaveLength(512);
    expect(full.tagMetrics.reduce((n, t) => n + t.count, 0)).toBe(4200);
    expect(full.tagMetrics.filter((t) => t.tag === edge.OVERFLOW_TAG)).toHaveLength(1);
  });

  it("sendPulse() posts the signed pulse and installs the policy of the response", async () => {
    const seen: Array<{ url: string; headers: Record<string, unknown>; body: string }> = [];
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        seen.push({ url: req.url ?? "", headers: req.headers, body });
        if (seen.length === 1)
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ version: 2, tagMaxWeights: { free: 0 } }));
        else res.writeHead(401).end('{"error":{"code":"BAD_SIGNATURE","message":"no"}}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const errors: edge.EdgeError[] = [];
      const g = new edge.EdgeGate({ onError: (e) => errors.push(e) });
      g.gate("free");
      expect(await g.sendPulse(`http://127.0.0.1:${port}/`, opts)).toBe(true);
      expect(seen[0]!.url).toBe("/v1/pulse");
      const sig = createHmac("sha256", "sk_test").update(`${seen[0]!.body}.${T}`).digest("hex");
      expect(seen[0]!.headers["x-waitstate-signature"]).toBe(sig);
      expect(g.gate("free").reason).toBe("tag_blocked");
      expect(await g.sendPulse(`http://127.0.0.1:${port}`, opts)).toBe(false);
      expect(errors.map((e) => e.code)).toEqual(["PULSE_FAILED"]);
      expect(g.gate("free").reason).toBe("tag_blocked"); // kept
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    const errors: edge.EdgeError[] = [];
    const g = new edge.EdgeGate({ onError: (e) => errors.push(e) });
    expect(await g.sendPulse("http://127.0.0.1:1", opts)).toBe(false);
    expect(errors[0]?.code).toBe("PULSE_FAILED");
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
    const defaultEntry = await import("../dist/sdk-edge/src/index.js");
    await defaultEntry.init(bytes);
    expect(defaultEntry.gate({ tagMaxWeights: { free: 0 } }, "free")).toEqual({ allowed: false, reason: "tag_blocked" });
  });
});
