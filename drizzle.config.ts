import { defineConfig } from "drizzle-kit";

/** `npm run db:generate` writes SQL migrations from the schema; wrangler and the tests apply them. */
export default defineConfig({
  dialect: "sqlite",
  schema: "./workers/src/db/schema.ts",
  out: "./migrations",
});
