import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

/** The TypeScript gate and histogram, run against the vectors inside workerd. */
export default defineConfig({
  plugins: [
    cloudflareTest({
      miniflare: {
        compatibilityDate: "2026-04-26",
        compatibilityFlags: ["nodejs_compat"],
      },
    }),
  ],
  test: {
    name: "protocol-workerd",
    root: import.meta.dirname,
    include: ["*.test.ts"],
  },
});
