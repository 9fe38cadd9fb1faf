// `npm run bench:fastly`: @waitstate/edge/fastly inside Fastly's Compute
// runtime. Not part of `npm test`: it installs Fastly's toolchain
// (@fastly/js-compute, into bench/fastly/node_modules, outside the workspace's
// lockfile) and the build takes a minute or more here.
//
// bench/fastly/app.js is bundled by esbuild and compiled by
// `js-compute-runtime`; Wizer runs its top level at build time, inside the
// runtime (SpiderMonkey compiled to WebAssembly, no WebAssembly global). That
// top level syncs the client once with an in-process stand-in for the control
// plane, whose policy blocks the tag "free", and logs the gate's decisions and
// the HMACs it signed with. This script checks those lines: the decision
// `tag_blocked` is made inside Fastly's runtime, and the signatures are the
// protocol's. Serving (`fastly compute serve`) is not run: it downloads
// Viceroy from GitHub.
import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const APP_DIR = path.join(ROOT, "bench", "fastly");
const RUNTIME = path.join(APP_DIR, "node_modules", ".bin", "js-compute-runtime");
const SECRET = "sk_fastly_build"; // app.js's

if (!existsSync(RUNTIME)) {
  console.log("installing @fastly/js-compute into bench/fastly (npm ci)");
  execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: APP_DIR, stdio: "inherit" });
}

const out = mkdtempSync(path.join(os.tmpdir(), "waitstate-fastly-"));
try {
  const bundle = path.join(out, "app.js");
  await build({
    entryPoints: [path.join(APP_DIR, "app.js")],
    bundle: true,
    format: "esm",
    target: "es2022",
    outfile: bundle,
    logLevel: "warning",
  });
  const wasm = path.join(out, "app.wasm");
  const started = performance.now();
  let log;
  try {
    log = execFileSync(RUNTIME, ["--enable-experimental-top-level-await", bundle, wasm], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (e) {
    console.error(`js-compute-runtime failed:\n${e.stdout ?? ""}${e.stderr ?? ""}`);
    process.exit(1);
  }
  const seconds = (performance.now() - started) / 1000;
  const lines = log.split("\n").filter((l) => l.startsWith("WAITSTATE-FASTLY "));
  for (const l of lines) console.log(l);

  const problems = [];
  const want = (text) => {
    if (!lines.some((l) => l.includes(text))) problems.push(`no line contains ${text}`);
  };
  want("typeofWebAssembly=undefined");
  want(`before={"allowed":true,"reason":"allowed"}`);
  want(`after={"allowed":false,"reason":"tag_blocked"}`);
  want(`other={"allowed":true,"reason":"allowed"}`);
  want("policyVersion=7 errors=[]");
  // Each request the client made: `timestamp signature body`, checked against node:crypto's HMAC.
  const signed = lines.filter((l) => l.startsWith("WAITSTATE-FASTLY signed ")).map((l) => JSON.parse(l.slice(24)));
  if (signed.length !== 2) problems.push(`expected 2 signed requests (key exchange, pulse), got ${signed.length}`);
  for (const s of signed) {
    const [timestamp, signature, ...rest] = s.split(" ");
    const body = rest.join(" ");
    const message = body === "" ? `POST\n/v1/auth/token\n.${timestamp}` : `${body}.${timestamp}`;
    const expected = createHmac("sha256", SECRET).update(message).digest("hex");
    if (signature !== expected)
      problems.push(`signature ${signature} over ${JSON.stringify(message.slice(0, 60))}… differs from ${expected}`);
    if (body !== "" && !/"latencyHistogram":\{"n":1,/.test(body)) problems.push(`the pulse carries no histogram of one latency: ${body}`);
  }
  if (problems.length > 0) {
    console.error(`Fastly build check failed:\n- ${problems.join("\n- ")}\n--- build output ---\n${log}`);
    process.exit(1);
  }
  console.log(
    `Fastly build check: ok. js-compute-runtime built ${(statSync(wasm).size / 1e6).toFixed(1)} MB in ${seconds.toFixed(0)} s; tag_blocked decided inside Fastly's runtime, signatures verified`,
  );
} finally {
  rmSync(out, { recursive: true, force: true });
}
