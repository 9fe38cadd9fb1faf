// `node bench/http.bench.mjs` (after `npm run build`): HTTP requests per second
// through express, fastify and hono with no limiter, with an empty middleware,
// with the WaitState middleware, and (express) with express-rate-limit's
// default memory store at a limit it never reaches; beside each, the server's
// CPU time per request. Each server runs in its own child process, so the
// load generator (autocannon, in this process) never shares its event loop.
// The WaitState servers sync with a stand-in control plane in this process,
// so policy and pulses are live during the run. Variants are interleaved
// across rounds; the table reports medians. Issue 5's target: the WaitState
// middleware costs ≤ 3 % throughput. `--quick`: 1 round of 1 s, README untouched.
// Never asserted in tests: this machine is shared and noisy.
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startControlPlane } from "./support.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SELF = fileURLToPath(import.meta.url);
const TAG_HEADER = { "x-waitstate-tag": "pro" };
const ROUTE = "/api/items";
const BODY = {
  items: [
    { id: 1, name: "alpha" },
    { id: 2, name: "beta" },
  ],
  total: 2,
};

// "noop" is an empty middleware (hook): the framework's own price for any
// middleware at all, so the WaitState column can be read against it.
const VARIANTS = {
  express: ["none", "noop", "waitstate", "express-rate-limit"],
  fastify: ["none", "noop", "waitstate"],
  hono: ["none", "noop", "waitstate"],
};

if (process.argv[2] === "--serve") await serve(...process.argv.slice(3));
else await main();

// ---------------------------------------------------------------- child: one server

async function serve(framework, variant, port, controlPlaneUrl, publishKey, secretKey) {
  // The parent going away (even killed) closes the IPC channel: never outlive it.
  process.on("disconnect", () => process.exit(0));
  let ws = null;
  if (variant === "waitstate") {
    const { WaitState } = await import("../sdk-node/dist/sdk-node/src/index.js");
    ws = new WaitState({
      publishKey,
      secretKey,
      baseUrl: controlPlaneUrl,
      pulseInterval: 1000,
      onError: (e) => console.error(`[child ${framework}] ${e.code}: ${e.message}`),
    });
    if (!(await ws.ready(5000))) throw new Error(`${framework}: the WaitState client did not sync with the stand-in control plane`);
  }
  // Port 0 (what the parent passes) picks a free port; the parent learns it over IPC.
  const listen = async (server) => {
    await new Promise((resolve, reject) => server.once("error", reject).listen(Number(port), "127.0.0.1", resolve));
    return server.address().port;
  };
  let boundPort;

  if (framework === "express") {
    const { default: express } = await import("express");
    const app = express();
    if (variant === "waitstate") {
      const { createMiddleware } = await import("../sdk-node/dist/sdk-node/src/middleware/express.js");
      app.use(createMiddleware({ waitstate: ws }));
    } else if (variant === "express-rate-limit") {
      const { rateLimit } = await import("express-rate-limit");
      app.use(rateLimit({ windowMs: 60_000, limit: 1e9 }));
    } else if (variant === "noop") {
      app.use((_req, _res, next) => next());
    }
    app.get(ROUTE, (_req, res) => res.json(BODY));
    boundPort = await listen(http.createServer(app));
  } else if (framework === "fastify") {
    const { default: Fastify } = await import("fastify");
    const app = Fastify({ logger: false });
    if (variant === "waitstate") {
      const { createPlugin } = await import("../sdk-node/dist/sdk-node/src/middleware/fastify.js");
      createPlugin({ waitstate: ws })(app);
    } else if (variant === "noop") {
      app.addHook("onRequest", (_request, _reply, done) => done());
    }
    app.get(ROUTE, async () => BODY);
    await app.listen({ port: Number(port), host: "127.0.0.1" });
    boundPort = app.server.address().port;
  } else if (framework === "hono") {
    const { Hono } = await import("hono");
    const app = new Hono();
    if (variant === "waitstate") {
      const { createMiddleware } = await import("../sdk-node/dist/sdk-node/src/middleware/hono.js");
      app.use(createMiddleware({ waitstate: ws }));
    } else if (variant === "noop") {
      app.use(async (_c, next) => {
        await next();
      });
    }
    app.get(ROUTE, (c) => c.json(BODY));
    boundPort = await listen(honoNodeServer(app));
  } else {
    throw new Error(`unknown framework ${framework}`);
  }
  // The parent asks for CPU time around each round: server CPU per request is steadier than req/s on a busy machine.
  process.on("message", () => {
    const { user, system } = process.cpuUsage();
    process.send?.({ cpuMicros: user + system });
  });
  process.send?.({ ready: true, port: boundPort });
}

/**
 * The minimal node:http adapter for a fetch-style app (hono ships none; the
 * @hono/node-server package is not installed). Both hono variants use it, so
 * its cost is in both columns.
 */
function honoNodeServer(app) {
  return http.createServer(async (req, res) => {
    try {
      const headers = new Headers();
      const raw = req.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) headers.append(raw[i], raw[i + 1]);
      const withBody = req.method !== "GET" && req.method !== "HEAD";
      const request = new Request(`http://${req.headers.host ?? "localhost"}${req.url}`, {
        method: req.method,
        headers,
        ...(withBody ? { body: req, duplex: "half" } : {}),
      });
      const response = await app.fetch(request);
      res.writeHead(response.status, Object.fromEntries(response.headers));
      res.end(Buffer.from(await response.arrayBuffer()));
    } catch (error) {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(String(error));
    }
  });
}

// ---------------------------------------------------------------- parent: load and report

async function main() {
  const quick = process.argv.includes("--quick");
  const rounds = quick ? 1 : Number(process.env.BENCH_ROUNDS ?? 5);
  const roundSeconds = quick ? 1 : Number(process.env.BENCH_ROUND_SECONDS ?? 3);
  const warmupSeconds = quick ? 0.5 : 1;
  const connections = 10;
  const { default: autocannon } = await import("autocannon");

  const children = new Set();
  const killAll = () => {
    for (const child of children) child.kill("SIGKILL");
    children.clear();
  };
  process.on("exit", killAll);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(signal, () => {
      killAll();
      process.exit(128 + os.constants.signals[signal]);
    });
  }

  const controlPlane = await startControlPlane(1000);
  async function startServer(framework, variant) {
    const child = spawn(
      process.execPath,
      [SELF, "--serve", framework, variant, "0", controlPlane.url, controlPlane.publishKey, controlPlane.secretKey],
      { cwd: ROOT, stdio: ["ignore", "inherit", "inherit", "ipc"] },
    );
    children.add(child);
    const port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${framework}/${variant}: no "ready" within 15 s`)), 15_000);
      child.once("message", (message) => {
        clearTimeout(timer);
        resolve(message.port);
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`${framework}/${variant}: server exited with code ${code}`));
      });
    });
    return { child, url: `http://127.0.0.1:${port}${ROUTE}` };
  }

  const cpuMicros = (child) =>
    new Promise((resolve) => {
      child.once("message", (message) => resolve(message.cpuMicros));
      child.send("cpu");
    });

  async function load(server, seconds) {
    const cpuBefore = await cpuMicros(server.child);
    const result = await autocannon({ url: server.url, connections, pipelining: 1, duration: seconds, headers: TAG_HEADER });
    const cpuAfter = await cpuMicros(server.child);
    const ok = result["2xx"];
    return {
      rps: ok / (result.duration || seconds),
      cpuPerRequest: (cpuAfter - cpuBefore) / ok,
      bad: result.non2xx + result.errors + result.timeouts,
    };
  }

  const results = [];
  let badResponses = 0;
  const started = Date.now();
  const loadBefore = os.loadavg()[0];
  for (const [framework, variants] of Object.entries(VARIANTS)) {
    const servers = {};
    for (const variant of variants) servers[variant] = await startServer(framework, variant);
    for (const variant of variants) await load(servers[variant], warmupSeconds);
    const samples = Object.fromEntries(variants.map((v) => [v, []]));
    const cpuSamples = Object.fromEntries(variants.map((v) => [v, []]));
    for (let round = 0; round < rounds; round++) {
      // Rotate the order so no variant always runs first (or right after the same neighbour).
      const order = variants.map((_, i) => variants[(i + round) % variants.length]);
      for (const variant of order) {
        const { rps, cpuPerRequest, bad } = await load(servers[variant], roundSeconds);
        samples[variant].push(rps);
        cpuSamples[variant].push(cpuPerRequest);
        badResponses += bad;
      }
      process.stderr.write(`${framework}: round ${round + 1}/${rounds} done\n`);
    }
    await Promise.all(
      Object.values(servers).map(({ child }) => {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        return exited.then(() => children.delete(child));
      }),
    );
    for (const variant of variants) {
      // Paired with the no-limiter run of the same round: slow drift on a shared machine cancels out.
      const ratio = median(samples[variant].map((rps, round) => rps / samples.none[round]));
      const cpuExtra = median(cpuSamples[variant].map((cpu, round) => cpu - cpuSamples.none[round]));
      results.push({
        framework,
        variant,
        rps: median(samples[variant]),
        min: Math.min(...samples[variant]),
        max: Math.max(...samples[variant]),
        ratio,
        cpu: median(cpuSamples[variant]),
        cpuExtra,
      });
    }
  }
  await controlPlane.stop();

  const version = (pkg) => JSON.parse(readFileSync(path.join(ROOT, "node_modules", pkg, "package.json"), "utf8")).version;
  const frameworkLabel = {
    express: `express ${version("express")}`,
    fastify: `fastify ${version("fastify")}`,
    hono: `hono ${version("hono")} (node:http adapter)`,
  };
  const variantLabel = {
    none: "no limiter",
    noop: "empty middleware (floor)",
    waitstate: "**WaitState middleware**",
    "express-rate-limit": `express-rate-limit ${version("express-rate-limit")} (memory store)`,
  };
  const pct = (ratio) => `${ratio >= 1 ? "+" : "−"}${Math.abs((ratio - 1) * 100).toFixed(1)} %`;

  const lines = [];
  lines.push(
    `Node ${process.version}, ${os.cpus()[0]?.model.trim() ?? "cpu"} × ${os.cpus().length}; autocannon ${version("autocannon")}, ${connections} connections, pipelining 1, \`GET ${ROUTE}\` with \`x-waitstate-tag: pro\`; ${rounds} interleaved round(s) × ${roundSeconds} s per variant after a ${warmupSeconds} s warm-up; each server in its own process:`,
  );
  lines.push("");
  lines.push(
    `"vs no limiter" and the CPU difference are medians of each round's pair with the no-limiter run. Load average before the run: ${loadBefore.toFixed(2)}.`,
  );
  lines.push("");
  lines.push("| framework | variant | req/s (median) | range over rounds | vs no limiter | server CPU µs/request (median, difference) |");
  lines.push("|---|---|---:|---:|---:|---:|");
  for (const r of results) {
    const vs = r.variant === "none" ? "—" : `${r.ratio.toFixed(3)} (${pct(r.ratio)})`;
    const cpu =
      r.variant === "none" ? r.cpu.toFixed(1) : `${r.cpu.toFixed(1)} (${r.cpuExtra >= 0 ? "+" : "−"}${Math.abs(r.cpuExtra).toFixed(1)})`;
    lines.push(
      `| ${frameworkLabel[r.framework]} | ${variantLabel[r.variant]} | ${Math.round(r.rps)} | ${Math.round(r.min)}–${Math.round(r.max)} | ${vs} | ${cpu} |`,
    );
  }
  lines.push("");
  const costs = results.filter((r) => r.variant === "waitstate").map((r) => `${r.framework} ${pct(r.ratio)}`);
  const met = results.filter((r) => r.variant === "waitstate").every((r) => r.ratio >= 0.97);
  lines.push(`Target: the WaitState middleware costs ≤ 3 % throughput — ${met ? "met" : "**not met**"}: ${costs.join(", ")}.`);
  lines.push(
    `Stand-in control plane: ${controlPlane.pulses} pulses received during the run; ${badResponses} non-2xx or failed responses in total (0 expected: no limiter ever denies here).`,
  );
  const table = lines.join("\n");
  process.stdout.write(`${table}\n`);
  process.stderr.write(`total ${((Date.now() - started) / 1000).toFixed(0)} s\n`);

  const readmePath = path.join(ROOT, "README.md");
  const readme = readFileSync(readmePath, "utf8");
  const marked = /<!-- bench-http:start -->[\s\S]*<!-- bench-http:end -->/;
  if (quick || process.env.BENCH_WRITE_README === "0") return;
  if (marked.test(readme)) {
    writeFileSync(
      readmePath,
      readme.replace(marked, () => `<!-- bench-http:start -->\n${table}\n<!-- bench-http:end -->`),
    );
    process.stdout.write("\nREADME.md updated.\n");
  } else {
    process.stdout.write("\n(README.md has no bench-http markers: not written.)\n");
  }
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
