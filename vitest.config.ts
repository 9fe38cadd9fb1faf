import { defineConfig } from "vitest/config";

/**
 * The Node project: every `<workspace>/test/**` suite except the ones that run
 * inside workerd, which have their own configs (see scripts/test.mjs).
 */
export default defineConfig({
  test: {
    include: ["*/test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/workerd/**", "**/dist/**"],
  },
});
