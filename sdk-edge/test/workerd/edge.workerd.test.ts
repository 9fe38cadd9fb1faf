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

  it("refuses to compile wasm from bytes at run time, which is why the module import exists", async () => {
    await expect(WebAssembly.compile(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]))).rejects.toThrow();
  });
});
