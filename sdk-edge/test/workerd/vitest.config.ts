import path from "node:path";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

const sdkEdge = path.resolve(import.meta.dirname, "../..");

/**
 * @waitstate/edge inside workerd, its wasm arriving by module import. The
 * CompiledWasm rule hands `.wasm` imports to workerd's module loader (a compiled
 * `WebAssembly.Module`, as wrangler gives a deployed Worker) instead of Vite's
 * wasm helper, which compiles bytes at run time — something workerd forbids.
 * The root is sdk-edge/ so that dist/waitstate.wasm resolves inside it.
 * globalSetup starts a scripted control plane (node:http) for the pulse tests.
 */
export default defineConfig({
  root: sdkEdge,
  plugins: [
    cloudflareTest({
      miniflare: {
        compatibilityDate: "2026-04-26",
        compatibilityFlags: ["nodejs_compat"],
        modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }],
      },
    }),
  ],
  test: {
    name: "edge-workerd",
    root: sdkEdge,
    include: ["test/workerd/*.test.ts"],
    globalSetup: ["test/workerd/global-setup.ts"],
  },
});
