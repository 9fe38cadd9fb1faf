// Applies migrations/ to the test D1 database before each test file (storage is
// isolated per file). Already-applied migrations are skipped.
import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";

await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
