import { defineConfig } from "vitest/config";

/**
 * The Node project: every `<workspace>/test/**` suite except the ones that run
 * inside workerd — `test/workerd/` folders and the Worker's own tests — which
 * have their own configs (see scripts/test.mjs).
 */
export default defineConfig({
  test: {
    include: ["*/test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/workerd/**", "**/dist/**", "workers/test/**", "durable-objects/test/**"],
  },
});
