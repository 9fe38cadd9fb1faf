// Brings a fresh clone to a runnable state, doing only what is missing: npm
// dependencies, the committed wasm module copied beside the edge loaders (no
// Rust needed: `npm run build:wasm` rebuilds it), and the TypeScript build of
// the workspaces. `npm start`, `npm test` and `npm run bench` all call it first.
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { ROOT, bin, isMain, log, runOrExit } from "./lib.mjs";

function mtime(file) {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

export async function setup() {
  const installed = path.join(ROOT, "node_modules", ".package-lock.json");
  const lock = path.join(ROOT, "package-lock.json");
  if (!existsSync(installed) || mtime(lock) > mtime(installed) || !existsSync(bin("wrangler"))) {
    log("installing npm dependencies (npm ci)");
    await runOrExit("npm", ["ci", "--no-audit", "--no-fund"]);
  }
  const { installWasm } = await import("./build-wasm.mjs");
  const wasm = installWasm();
  if (wasm.copied) log(`installed the committed wasm module (${wasm.size} bytes) into sdk-edge/dist`);
  log("building TypeScript workspaces (tsc -b)");
  await runOrExit(bin("tsc"), ["-b"]);
}

if (isMain(import.meta.url)) {
  await setup();
}
