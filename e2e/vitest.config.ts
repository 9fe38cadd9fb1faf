import { defineConfig } from "vitest/config";

/**
 * End-to-end suite: the real control plane under `wrangler dev` (started by
 * each test file on a free port, with its own local state) and real clients.
 * Files run one at a time: each starts workerd, and this machine has 2 cores.
 */
export default defineConfig({
  test: {
    include: ["e2e/**/*.test.ts"],
    // The runtime matrix is its own suite (e2e/runtimes/vitest.config.ts).
    exclude: ["e2e/runtimes/**"],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
