import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

/** The control-plane Worker, run in workerd with the bindings of the root wrangler.toml. */
export default defineConfig({
  plugins: [cloudflareTest({ wrangler: { configPath: "../../wrangler.toml" } })],
  test: {
    name: "workers",
    root: import.meta.dirname,
    include: ["*.test.ts"],
  },
});
