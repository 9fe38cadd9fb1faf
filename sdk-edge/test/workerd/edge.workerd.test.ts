import { describe, expect, it } from "vitest";
import * as edge from "@waitstate/edge";
import { edgeVectorSuite } from "../edge-cases.js";

// No node:crypto here: the expected signatures are the vectors', produced by Node's createHmac.
edgeVectorSuite("workerd", edge, (c) => c.expect);

describe("@waitstate/edge in workerd", () => {
  it("runs inside workerd with the module-imported wasm", () => {
    expect(navigator.userAgent).toBe("Cloudflare-Workers");
    expect(edge.isInitialized()).toBe(true);
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
