import { defineConfig } from "vitest/config";

/**
 * The edge runtime matrix: @waitstate/edge in Node, Deno, Bun, Vercel's Edge
 * Runtime and Cloudflare Workers (wrangler dev), each against one real control
 * plane (`wrangler dev`, started once for the file).
 */
export default defineConfig({
  test: {
    include: ["e2e/runtimes/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 90_000,
    hookTimeout: 120_000,
  },
});
