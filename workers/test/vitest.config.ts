import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

const root = path.resolve(import.meta.dirname, "../..");

/** The control-plane Worker in workerd, with the root wrangler.toml's bindings and the D1 migrations. */
export default defineConfig(async () => ({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: path.join(root, "wrangler.toml") },
      miniflare: {
        bindings: {
          TEST_MIGRATIONS: await readD1Migrations(path.join(root, "migrations")),
          ADMIN_TOKEN: "test-admin-token",
          // 32 bytes of 0x01, base64: a fixed test key for secret keys at rest.
          ENCRYPTION_KEY: "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
        },
      },
    }),
  ],
  test: {
    name: "workers",
    root: import.meta.dirname,
    include: ["*.test.ts"],
    setupFiles: ["./apply-migrations.ts"],
  },
}));
