// `npm run demo`: WaitState's loop, live, in a minute and a half. Starts the
// control plane (wrangler dev, local state in a temp directory), three
// instances of the shop API (express + @waitstate/sdk, examples/shop-api), and
// open-loop free/pro/enterprise traffic; creates the documented three layered reflex
// rules; then walks the backend through the shedding table's four rows of conditions
// and back, printing what each tier gets, the fleet's p95, the rules that
// fired and the policy the instances enforce. Ctrl-C stops everything.
//
// Knobs: DEMO_PHASE_SECONDS (default 10), DEMO_PORT (default: a free port).
import { log } from "./lib.mjs";
import { setup } from "./setup.mjs";

const PHASE_SECONDS = Number(process.env.DEMO_PHASE_SECONDS ?? 10);
const SITE = "shop";
const TIMING = { pulseIntervalMs: 1000, leaseDurationSeconds: 10, windowSeconds: 2, cooldownSeconds: 2 };
const tty = process.stdout.isTTY === true;
const color = (code) => (s) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = color("1");
const dim = color("2");
const green = color("32");
const yellow = color("33");
const red = color("31");

await setup();
const { startLocalControlPlane } = await import("./local-control-plane.mjs");
const { startShopApi } = await import("../examples/shop-api/api.mjs");
const { startLoad, summarize } = await import("../examples/shop-api/load.mjs");
const { ROWS, TIERS, configureShop, trafficMix, verdict, layeredRules } = await import("../examples/shop-api/scenario.mjs");

/** @type {import("./local-control-plane.mjs").LocalControlPlane | null} */
let cp = null;
let apis = [];
let load = null;
let stopping = null;

function stopAll(code) {
  stopping ??= (async () => {
    await load?.stop().catch(() => {});
    await Promise.all(apis.map((a) => a.close().catch(() => {})));
    await cp?.dispose().catch(() => {});
    process.exit(code);
  })();
  return stopping;
}
process.on("SIGINT", () => {
  process.stdout.write("\nstopping: load, the three instances, the control plane…\n");
  void stopAll(130);
});
process.on("SIGTERM", () => void stopAll(143));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const OPERATORS = { gt: ">", gte: "≥", lt: "<", lte: "≤" };

try {
  log("starting the control plane (wrangler dev, local D1/KV/Durable Objects)…");
  cp = await startLocalControlPlane({ port: process.env.DEMO_PORT ? Number(process.env.DEMO_PORT) : undefined });
  const tenant = await cp.tenant("Demo Shop", "enterprise");
  const api = (method, path, body) => cp.api(method, path, tenant.managementToken, body);
  const ruleIds = await configureShop(api, { siteId: SITE, ...TIMING });
  const ruleNumber = Object.fromEntries(Object.entries(ruleIds).map(([n, id]) => [id, Number(n)]));

  apis = await Promise.all(
    [1, 2, 3].map((n) =>
      startShopApi({
        instanceId: `shop-${n}`,
        siteId: SITE,
        publishKey: tenant.publishKey,
        secretKey: tenant.secretKey,
        baseUrl: cp.url,
        latencyMs: ROWS[0].latencyMs,
        errorRate: ROWS[0].errorRate,
      }),
    ),
  );
  await Promise.all(apis.map((a) => a.client.ready(15_000)));
  load = startLoad({ targets: apis.map((a) => a.url), mix: trafficMix(6) });

  console.log(
    [
      "",
      bold("WaitState demo") + dim(` — control plane ${cp.url} (wrangler dev, local state)`),
      `site "${SITE}": 3 instances of an express API with @waitstate/sdk (${apis.map((a) => a.url.replace("http://", "")).join(", ")})`,
      `traffic: free, pro and enterprise users, 36 requests/s each (half light, cost 3; half heavy, cost 8)`,
      `pulse every ${TIMING.pulseIntervalMs} ms · rules read a ${TIMING.windowSeconds} s window · cooldown ${TIMING.cooldownSeconds} s`,
      "rules (the documented layered rules):",
      ...layeredRules(SITE, TIMING.cooldownSeconds).map((r, i) => `  #${i + 1} ${describeRule(r)}`),
      "",
    ].join("\n"),
  );

  const phases = [
    ...ROWS.map((row, i) => ({ ...row, title: `row ${i + 1}: ${row.name}` })),
    { ...ROWS[0], title: "back to health: latency 80 ms, errors 2" },
  ];
  const results = [];
  for (const [i, phase] of phases.entries()) {
    for (const a of apis) Object.assign(a.backend, { latencyMs: phase.latencyMs, errorRate: phase.errorRate });
    const started = Date.now();
    let lines = 0;
    let last = null;
    while (Date.now() - started < PHASE_SECONDS * 1000) {
      await sleep(1000);
      const status = await api("GET", `/v1/sites/${SITE}/status`).catch(() => null);
      const now = Date.now();
      // requests sent 3 s ago up to the backend's latency ago: all of them have answered
      const summary = summarize(load.records, now - 3000 - phase.latencyMs, now - phase.latencyMs - 200);
      last = { summary, status };
      const text = render(
        `${i + 1}/${phases.length} — ${phase.title}`,
        Math.round((now - started) / 1000),
        phase,
        summary,
        status,
        ruleNumber,
      );
      if (tty) {
        if (lines > 0) process.stdout.write(`\x1b[${lines}A\x1b[J`);
        process.stdout.write(text);
      }
      lines = text.split("\n").length - 1;
    }
    if (!tty)
      process.stdout.write(
        render(`${i + 1}/${phases.length} — ${phase.title}`, PHASE_SECONDS, phase, last.summary, last.status, ruleNumber),
      );
    const observed = Object.fromEntries(TIERS.map((t) => [t.name, verdict(last.summary, t.name)]));
    const ok = TIERS.every((t) => observed[t.name] === phase.expect[t.name]);
    results.push({ phase: phase.title, observed, ok });
    console.log(ok ? green(`  ✓ as the product's shedding table says`) : red(`  ✗ expected ${JSON.stringify(phase.expect)}`));
    console.log("");
  }

  console.log(bold("summary"));
  for (const r of results) {
    console.log(
      `  ${r.ok ? green("✓") : red("✗")} ${r.phase.padEnd(42)} free ${pad(r.observed.free)} pro ${pad(r.observed.pro)} enterprise ${r.observed.enterprise}`,
    );
  }
  const calls = apis.reduce((n, a) => n + a.gateCalls, 0);
  console.log(dim(`\n${calls} gate() calls across the three instances. Stopping…`));
  await stopAll(results.every((r) => r.ok) ? 0 : 1);
} catch (error) {
  console.error(red(`demo failed: ${error instanceof Error ? error.stack : error}`));
  if (cp?.output) console.error(dim(cp.output.slice(-2000)));
  await stopAll(1);
}

function pad(s) {
  return s.padEnd(10);
}

function describeRule(r) {
  const action = r.action === "block" ? `block ${r.tagName}` : `throttle ${r.tagName} ×${r.actionValue}`;
  return `${action.padEnd(22)} when ${r.metric} ${OPERATORS[r.operator]} ${r.threshold}${r.metric.includes("latency") ? " ms" : " in the window"}`;
}

function paint(v) {
  if (v === "allowed") return green(v.padEnd(10));
  if (v === "throttled") return yellow(v.padEnd(10));
  if (v === "blocked") return red(v.padEnd(10));
  return v.padEnd(10);
}

function render(title, seconds, phase, summary, status, ruleNumber) {
  const out = [
    `${bold(`Phase ${title}`)}  ${dim(`backend ${phase.latencyMs} ms, ${Math.round(phase.errorRate * 100)} % errors · t+${seconds}s`)}`,
  ];
  out.push(dim("  tier        requests  allowed  denied  reasons                              now"));
  for (const t of TIERS) {
    const rows = Object.values(summary).filter((s) => s.tier === t.name);
    const sent = rows.reduce((n, s) => n + s.sent, 0);
    const allowed = rows.reduce((n, s) => n + s.allowed, 0);
    const denied = rows.reduce((n, s) => n + s.denied, 0);
    const reasons = {};
    for (const s of rows) for (const [k, v] of Object.entries(s.reasons)) reasons[k] = (reasons[k] ?? 0) + v;
    const reasonText = Object.entries(reasons)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
    out.push(
      `  ${t.name.padEnd(11)} ${String(sent).padStart(8)} ${String(allowed).padStart(8)} ${String(denied).padStart(7)}  ${reasonText.padEnd(36)} ${paint(verdict(summary, t.name))}`,
    );
  }
  if (status) {
    const w = status.window;
    const p95 = w.p95 === null ? "—" : `${Math.round(w.p95)} ms`;
    out.push(
      `  fleet (${w.instances} instances, ${w.seconds} s window): p95 ${p95} · mean ${Math.round(w.latency)} ms · ${w.errors} errors · ${Math.round(w.rps)} gate calls/s`,
    );
    const why = (r) =>
      `#${ruleNumber[r.id]} (${r.metric} ${r.metric.includes("latency") ? `${Math.round(r.value)} ms` : r.value} ${OPERATORS[r.operator]} ${r.threshold})`;
    const applied = status.rules.filter((r) => r.applied);
    const overridden = status.rules.filter((r) => r.active && !r.applied);
    out.push(
      `  rules fired: ${applied.length === 0 ? "none" : applied.map(why).join(", ")}${
        overridden.length === 0 ? "" : dim(`  (also holding, outranked for the same tier: ${overridden.map(why).join(", ")})`)
      }`,
    );
    const weights = Object.entries(status.policy.tagMaxWeights);
    const versions = [...new Set(apis.map((a) => a.client.policy?.version))].join("/");
    out.push(
      `  policy v${status.policy.version} (instances hold v${versions}): ${weights.length === 0 ? "every tier unlimited" : weights.map(([tag, w]) => (w === 0 ? `${tag} blocked` : `${tag} max weight ${w}`)).join(", ")}`,
    );
  }
  return `${out.join("\n")}\n`;
}
