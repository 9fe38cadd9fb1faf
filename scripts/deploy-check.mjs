// `npm run deploy:check`: what `wrangler deploy` would upload, built offline
// (`wrangler deploy --dry-run`, no account needed): the bundle and its size,
// with the bindings it expects (DB, POLICIES, SITE_AGGREGATOR).
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { setup } from "./setup.mjs";
import { bin, log, run } from "./lib.mjs";

await setup();
const outdir = mkdtempSync(path.join(tmpdir(), "waitstate-deploy-"));
try {
  const { code, output } = await run(bin("wrangler"), ["deploy", "--dry-run", "--outdir", outdir], { capture: true });
  if (code !== 0) {
    log("wrangler deploy --dry-run failed");
    process.exit(code);
  }
  for (const binding of ["env.DB", "env.POLICIES", "env.SITE_AGGREGATOR"]) {
    if (!output.includes(binding)) {
      log(`the dry run does not list ${binding}: check wrangler.toml`);
      process.exit(1);
    }
  }
  const files = readdirSync(outdir).filter((f) => !f.endsWith(".map") && f !== "README.md");
  let raw = 0;
  let gzip = 0;
  for (const file of files) {
    const bytes = readFileSync(path.join(outdir, file));
    raw += statSync(path.join(outdir, file)).size;
    gzip += gzipSync(bytes).length;
  }
  const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
  log(`bundle: ${files.join(", ")} — ${kib(raw)} raw, ${kib(gzip)} gzip (Workers' limits: 3 MiB gzip on Free, 10 MiB on Paid)`);
} finally {
  rmSync(outdir, { recursive: true, force: true });
}
