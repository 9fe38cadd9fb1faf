// `npm start`: the control plane on http://127.0.0.1:8787 under `wrangler dev`
// (embedded workerd, local D1/KV/Durable Objects in .wrangler/state, no account).
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { setup } from "./setup.mjs";
import { ROOT, bin, log, run, runOrExit } from "./lib.mjs";

await setup();

const migrations = path.join(ROOT, "migrations");
const hasMigrations = existsSync(migrations) && readdirSync(migrations).some((f) => f.endsWith(".sql"));
if (hasMigrations) {
  log("applying D1 migrations locally");
  // CI=true: apply without the interactive "Ok to proceed?" prompt; already-applied ones are skipped.
  await runOrExit(bin("wrangler"), ["d1", "migrations", "apply", "DB", "--local"], { env: { CI: "true" } });
}

const port = process.env.PORT ?? "8787";
log(`control plane starting on http://127.0.0.1:${port} (Ctrl-C stops it)`);
const { code } = await run(bin("wrangler"), [
  "dev",
  "--ip",
  "127.0.0.1",
  "--port",
  port,
  "--show-interactive-dev-session=false",
  ...process.argv.slice(2),
]);
process.exit(code);
