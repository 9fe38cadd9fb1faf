// Small helpers shared by the repo scripts (setup, test, start). Node builtins only:
// these run before `npm install` has.
import { spawn } from "node:child_process";
import { realpathSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import path from "node:path";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Environment for wrangler/miniflare: offline, quiet, no telemetry. */
export const WRANGLER_ENV = {
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_HIDE_BANNER: "true",
};

export function log(message) {
  process.stderr.write(`\x1b[36m[waitstate]\x1b[0m ${message}\n`);
}

/**
 * Runs a command, streaming its output; resolves with { code, output } where
 * output is what it printed (kept when `capture` is set, for summaries).
 */
export function run(command, args, { cwd = ROOT, env = {}, capture = false, quiet = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: { ...process.env, ...WRANGLER_ENV, ...env },
      stdio: capture ? ["ignore", "pipe", "pipe"] : "inherit",
    });
    let output = "";
    if (capture) {
      child.stdout.on("data", (d) => {
        output += d;
        if (!quiet) process.stdout.write(d);
      });
      child.stderr.on("data", (d) => {
        output += d;
        if (!quiet) process.stderr.write(d);
      });
    }
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code: code ?? (signal ? 1 : 0), output }));
  });
}

export async function runOrExit(command, args, options) {
  const { code } = await run(command, args, options);
  if (code !== 0) {
    log(`${command} ${args.join(" ")} failed (exit ${code})`);
    process.exit(code);
  }
}

export const bin = (name) => path.join(ROOT, "node_modules", ".bin", name);

/** Whether the module at `moduleUrl` is the script node was started with (symlinks resolved). */
export function isMain(moduleUrl) {
  try {
    return (
      process.argv[1] !== undefined &&
      pathToFileURL(realpathSync(process.argv[1])).href === pathToFileURL(realpathSync(fileURLToPath(moduleUrl))).href
    );
  } catch {
    return false;
  }
}
