// `npm start`: the control plane on http://127.0.0.1:8787 under `wrangler dev`
// (embedded workerd, local D1/KV/Durable Objects in .wrangler/state, no account).
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { setup } from "./setup.mjs";
import { ROOT, bin, log, run, runOrExit } from "./lib.mjs";

await setup();

// Local secrets: a random ADMIN_TOKEN (bootstrap) and ENCRYPTION_KEY (secret keys at rest),
// created once and kept in .dev.vars (git-ignored), which wrangler dev reads.
const devVars = path.join(ROOT, ".dev.vars");
const existing = existsSync(devVars) ? readFileSync(devVars, "utf8") : "";
const additions = [];
if (!/^ADMIN_TOKEN=/m.test(existing)) additions.push(`ADMIN_TOKEN=ws_admin_${randomBytes(24).toString("base64url")}`);
if (!/^ENCRYPTION_KEY=/m.test(existing)) additions.push(`ENCRYPTION_KEY=${randomBytes(32).toString("base64")}`);
if (additions.length) {
  writeFileSync(devVars, `${existing + (existing && !existing.endsWith("\n") ? "\n" : "") + additions.join("\n")}\n`);
  log(`wrote ${additions.map((a) => a.split("=")[0]).join(" and ")} to .dev.vars`);
}
const adminToken = /^ADMIN_TOKEN=(.*)$/m.exec(readFileSync(devVars, "utf8"))?.[1]?.trim();

const migrations = path.join(ROOT, "migrations");
const hasMigrations = existsSync(migrations) && readdirSync(migrations).some((f) => f.endsWith(".sql"));
if (hasMigrations) {
  log("applying D1 migrations locally");
  // CI=true: apply without the interactive "Ok to proceed?" prompt; already-applied ones are skipped.
  await runOrExit(bin("wrangler"), ["d1", "migrations", "apply", "DB", "--local"], { env: { CI: "true" } });
}

const port = process.env.PORT ?? "8787";
const base = `http://127.0.0.1:${port}`;
log(`control plane starting on ${base} (Ctrl-C stops it). First steps:
  # 1. an organization and its management token (shown once)
  curl -s -X POST ${base}/v1/organizations -H 'authorization: Bearer ${adminToken}' -H 'content-type: application/json' -d '{"name":"My company"}'
  # 2. an SDK key pair (publishKey + secretKey, the secret shown once)
  curl -s -X POST ${base}/v1/api-keys -H 'authorization: Bearer <managementToken>' -H 'content-type: application/json' -d '{"name":"web"}'`);
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
