/** status and tail: the live view of one site from `GET /v1/sites/:id/status`. */
import type { CommandSpec, Context, GroupSpec } from "../command.js";
import { CliError, EXIT } from "../errors.js";
import { fmtAction, fmtClock, fmtCondition, fmtLimit, fmtMs, fmtNum, fmtPercent, fmtTarget, fmtTime, OPERATOR_SYMBOL } from "../output.js";
import type { Timing } from "./sites.js";

interface Policy {
  version: number;
  globalMaxWeight: number | null;
  tagMaxWeights: Record<string, number | null>;
  killSignal: boolean;
  status: string;
  pulseInterval: number;
  leaseDurationSeconds: number;
  issuedAt?: number;
  retryAfterSeconds?: number;
}
interface WindowNumbers {
  calls: number;
  rps: number;
  errors: number;
  errorRate: number;
  latency: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}
interface StatusRule {
  id: string;
  tagName: string | null;
  metric: string;
  metricTag: string | null;
  operator: string;
  threshold: number;
  action: string;
  actionValue: number | null;
  enabled: boolean;
  priority: number;
  cooldownSeconds?: number;
  active: boolean;
  applied: boolean;
  firedAt: number | null;
  value: number | null;
}
interface ReflexEvent {
  seq: number;
  kind: "fired" | "cleared";
  ruleId: string;
  at: number;
  tagName: string | null;
  metric: string;
  metricTag: string | null;
  value?: number | null;
  operator: string;
  threshold: number;
}
export interface SiteStatus {
  siteId: string;
  policy: Policy;
  timing: Timing;
  window: WindowNumbers & { seconds: number; pulses: number; instances: number };
  tags: Record<string, WindowNumbers>;
  rules: StatusRule[];
  events: ReflexEvent[];
  evaluatedAt: number;
}

const SITE_OPTION = { site: { type: "string" as const, value: "<site-id>", description: "the site (required)" } };

function fetchStatus(ctx: Context, site: string): Promise<SiteStatus> {
  return ctx.api().get<SiteStatus>(`/v1/sites/${encodeURIComponent(site)}/status`);
}

/** The rule that explains a limit: the applied rule for that tag, else an applied rule on all traffic. */
function whyLimit(status: SiteStatus, tag: string | null): StatusRule | undefined {
  const applied = status.rules.filter((r) => r.applied);
  return applied.find((r) => r.tagName === tag) ?? applied.find((r) => r.tagName === null);
}

function policyStatus(ctx: Context, p: Policy): string {
  return p.status === "ok" ? ctx.out.green("ok") : ctx.out.yellow(p.status);
}

function eventText(ctx: Context, e: ReflexEvent, rule: StatusRule | undefined): string {
  const value = e.value === null || e.value === undefined ? "no data" : fmtNum(e.value);
  const kind = e.kind === "fired" ? ctx.out.red("fired  ") : ctx.out.green("cleared");
  const action = rule ? `${fmtAction(rule)} ${fmtTarget(e.tagName)}` : fmtTarget(e.tagName);
  const metric = e.metricTag ? `${e.metric}[${e.metricTag}]` : e.metric;
  return `${kind}  ${e.ruleId}  ${action}  ${metric} ${value} ${OPERATOR_SYMBOL[e.operator] ?? e.operator} ${e.threshold}`;
}

function printStatus(ctx: Context, s: SiteStatus): void {
  const o = ctx.out;
  const p = s.policy;
  const w = s.window;
  const limits: string[] = [];
  const globalWhy = p.globalMaxWeight !== null ? whyLimit(s, null) : undefined;
  limits.push(`all traffic: ${fmtLimit(p.globalMaxWeight)}${globalWhy ? o.dim(`  ← ${globalWhy.id} (${fmtCondition(globalWhy)})`) : ""}`);
  for (const [tag, limit] of Object.entries(p.tagMaxWeights).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const why = whyLimit(s, tag);
    limits.push(
      `${tag}: ${limit === 0 ? o.red("0 (blocked)") : fmtLimit(limit)}${why ? o.dim(`  ← ${why.id} (${fmtCondition(why)})`) : ""}`,
    );
  }
  o.kv([
    ["site", `${o.bold(s.siteId)}  ${o.dim(`evaluated ${fmtTime(s.evaluatedAt)}`)}`],
    [
      "policy",
      `v${p.version}  status ${policyStatus(ctx, p)}  kill switch ${p.killSignal ? o.red("ON: every gate() call is denied") : "off"}`,
    ],
    ["limits", limits.join("\n")],
    ["timing", `pulse every ${s.timing.pulseIntervalMs} ms, lease ${s.timing.leaseDurationSeconds} s, window ${s.timing.windowSeconds} s`],
    [
      "fleet",
      `${w.instances} instance${w.instances === 1 ? "" : "s"}, ${w.pulses} pulse${w.pulses === 1 ? "" : "s"} in the last ${w.seconds} s\n` +
        `${fmtNum(w.rps)} calls/s, ${fmtNum(w.errors)} errors (${fmtPercent(w.errorRate)}), latency mean ${fmtMs(w.latency)} ms, p50 ${fmtMs(w.p50)}, p95 ${fmtMs(w.p95)}, p99 ${fmtMs(w.p99)} ms`,
    ],
  ]);
  const tags = Object.entries(s.tags);
  o.line();
  if (tags.length === 0) {
    o.line(o.dim("No traffic in the window. Send pulses from an SDK with this siteId to see health here."));
  } else {
    o.table(
      [
        { header: "TAG" },
        { header: "CALLS/S", align: "right" },
        { header: "CALLS", align: "right" },
        { header: "ERRORS", align: "right" },
        { header: "ERR %", align: "right" },
        { header: "MEAN MS", align: "right" },
        { header: "P50 MS", align: "right" },
        { header: "P95 MS", align: "right" },
        { header: "P99 MS", align: "right" },
        { header: "LIMIT", align: "right" },
      ],
      tags.map(([tag, n]) => [
        tag,
        fmtNum(n.rps),
        fmtNum(n.calls),
        fmtNum(n.errors),
        fmtPercent(n.errorRate),
        fmtMs(n.latency),
        fmtMs(n.p50),
        fmtMs(n.p95),
        fmtMs(n.p99),
        tag in p.tagMaxWeights ? fmtLimit(p.tagMaxWeights[tag]) : fmtLimit(p.globalMaxWeight),
      ]),
    );
  }
  o.line();
  if (s.rules.length === 0) {
    o.line(o.dim("No reflex rules apply to this site. Add one: waitstate rules add --help"));
  } else {
    o.table(
      [
        { header: "RULE" },
        { header: "PRI", align: "right" },
        { header: "TARGET" },
        { header: "CONDITION" },
        { header: "ACTION" },
        { header: "VALUE", align: "right" },
        { header: "STATE" },
      ],
      s.rules.map((r) => [
        r.id,
        String(r.priority),
        fmtTarget(r.tagName),
        fmtCondition(r),
        fmtAction(r),
        r.value === null ? "-" : fmtNum(r.value),
        !r.enabled
          ? o.dim("disabled")
          : r.applied
            ? o.red(`applied${r.firedAt ? ` since ${fmtClock(r.firedAt)}` : ""}`)
            : r.active
              ? o.yellow(`active (another rule applies)${r.firedAt ? ` since ${fmtClock(r.firedAt)}` : ""}`)
              : o.green("idle"),
      ]),
    );
  }
  if (s.events.length > 0) {
    o.line();
    o.line(o.bold("Recent rule events"));
    const byId = new Map(s.rules.map((r) => [r.id, r]));
    for (const e of s.events.slice(0, 10)) o.line(`${fmtTime(e.at)}  ${eventText(ctx, e, byId.get(e.ruleId))}`);
  }
}

const status: CommandSpec = {
  path: ["status"],
  summary: "a site's current policy, timing, fleet health and rule states",
  options: SITE_OPTION,
  examples: ["waitstate status --site prod", "waitstate status --site prod --json | jq .window.p95"],
  async run(ctx) {
    const s = await fetchStatus(ctx, ctx.need("site"));
    if (ctx.json) return ctx.out.printJson(s);
    printStatus(ctx, s);
  },
};

function policyLine(ctx: Context, p: Policy, first: boolean): string {
  const parts = [`${ctx.out.bold(`policy v${p.version}`)}${first ? ctx.out.dim(" (current)") : ""}`, `status ${policyStatus(ctx, p)}`];
  if (p.killSignal) parts.push(ctx.out.red("KILL SWITCH ON"));
  if (p.globalMaxWeight !== null) parts.push(`all traffic ${fmtLimit(p.globalMaxWeight)}`);
  const tags = Object.entries(p.tagMaxWeights);
  parts.push(tags.length === 0 ? "no tag limits" : tags.map(([t, l]) => `${t}=${fmtLimit(l)}`).join(" "));
  return parts.join("  ");
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

/**
 * Prints what is new: rule events not printed yet (newer than the first
 * status's), then the policy when its version changed. A streamed event whose
 * rule the last status did not list yet (a rule just created) waits for the
 * next status, which lists both, so every line names the rule's action.
 */
class Follower {
  lastVersion: number | null = null;
  private baseline = -Infinity;
  private highest = -Infinity;
  private readonly printed = new Set<number>();
  private rules = new Map<string, StatusRule>();

  constructor(private readonly ctx: Context) {}

  status(s: SiteStatus): void {
    const first = this.lastVersion === null;
    this.rules = new Map(s.rules.map((r) => [r.id, r]));
    const maxSeq = Math.max(-Infinity, ...s.events.map((e) => e.seq));
    if (first) {
      this.baseline = maxSeq;
    } else {
      // a re-created site starts its sequence again
      if (maxSeq < this.highest) {
        this.baseline = -Infinity;
        this.highest = -Infinity;
        this.printed.clear();
      }
      for (const e of [...s.events].sort((a, b) => a.seq - b.seq)) this.print(s.siteId, e);
    }
    this.highest = Math.max(this.highest, maxSeq);
    if (first || s.policy.version !== this.lastVersion) this.policy(s.siteId, s.policy, s.evaluatedAt, first);
  }

  event(siteId: string, e: ReflexEvent): void {
    if (this.rules.has(e.ruleId)) this.print(siteId, e);
  }

  private print(siteId: string, e: ReflexEvent): void {
    if (e.seq <= this.baseline || this.printed.has(e.seq)) return;
    this.printed.add(e.seq);
    this.highest = Math.max(this.highest, e.seq);
    if (this.ctx.json) this.ctx.out.jsonLine({ type: `rule.${e.kind}`, siteId, ...e });
    else this.ctx.out.line(`${fmtClock(e.at)}  ${eventText(this.ctx, e, this.rules.get(e.ruleId))}`);
  }

  policy(siteId: string, p: Policy, at: number, first: boolean): void {
    if (!first && p.version === this.lastVersion) return;
    if (this.ctx.json) this.ctx.out.jsonLine({ type: "policy", siteId, at, current: first, policy: p });
    else this.ctx.out.line(`${fmtClock(at)}  ${policyLine(this.ctx, p, first)}`);
    this.lastVersion = p.version;
  }
}

const tail: CommandSpec = {
  path: ["tail"],
  summary: "follow a site live: one line per policy change and per rule fired/cleared (Ctrl-C stops)",
  description:
    "Streams the site's events (GET /v1/sites/:id/events, Server-Sent Events): the first line is the current policy; then a line for " +
    'each new policy version and each rule fired or cleared, as they happen. With --json, one JSON object per line: {"type":"policy",…} ' +
    'or {"type":"rule.fired"|"rule.cleared",…}. Ctrl-C exits 0. A dropped stream is reported on stderr and reopened; a rejected token (3) ' +
    "or a deleted site (4) ends it. Only a control plane without the event stream is polled instead (every --interval ms).",
  options: {
    ...SITE_OPTION,
    interval: {
      type: "string",
      value: "<ms>",
      description: "poll interval for a control plane without the event stream, at least 250 (default 1000)",
    },
  },
  examples: ["waitstate tail --site prod", "waitstate tail --site prod --json | jq -c 'select(.type == \"rule.fired\")'"],
  async run(ctx) {
    const site = ctx.need("site");
    const interval = Math.max(250, ctx.num("interval", { int: true }) ?? 1000);
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once("SIGINT", onSignal);
    const follow = new Follower(ctx);
    let failing = false;
    let polling = false;
    /** A failure the stream or the poll recovers from (the network, the control plane restarting); anything else ends tail. */
    const recover = async (err: unknown) => {
      const transient = err instanceof CliError && (err.exitCode === EXIT.UNREACHABLE || err.exitCode === EXIT.FAILURE);
      if (!transient || follow.lastVersion === null) throw err;
      if (!failing) ctx.out.note(`warning: ${(err as Error).message}; retrying`);
      failing = true;
      await sleep(polling ? interval : 1000, stop.signal);
    };
    try {
      if (!ctx.json) ctx.out.note(`Following site ${site} at ${ctx.api().baseUrl}; Ctrl-C to stop.`);
      while (!stop.signal.aborted && !polling) {
        try {
          for await (const e of ctx.api().events(`/v1/sites/${encodeURIComponent(site)}/events`, stop.signal)) {
            if (failing) ctx.out.note("reconnected");
            failing = false;
            const message = JSON.parse(e.data) as { status?: SiteStatus; event?: ReflexEvent; policy?: Policy };
            if (e.event === "status" && message.status) follow.status(message.status);
            else if (e.event === "policy" && message.policy && follow.lastVersion !== null)
              follow.policy(site, message.policy, message.policy.issuedAt ?? Date.now(), false);
            else if ((e.event === "rule.fired" || e.event === "rule.cleared") && message.event && follow.lastVersion !== null)
              follow.event(site, message.event);
          }
          // The server ends a stream after a while (its credentials are checked again): reopen it.
        } catch (err) {
          // Refused as a route this control plane does not have (an older version): poll the status instead.
          if (err instanceof CliError && err.exitCode === EXIT.NOT_FOUND && /has no GET/.test(err.message)) {
            polling = true;
            ctx.out.note(`This control plane has no event stream; polling the site's status every ${interval} ms instead.`);
          } else {
            await recover(err);
          }
        }
      }
      while (!stop.signal.aborted && polling) {
        try {
          follow.status(await fetchStatus(ctx, site));
          if (failing) ctx.out.note("reconnected");
          failing = false;
          await sleep(interval, stop.signal);
        } catch (err) {
          if (stop.signal.aborted) break;
          await recover(err);
        }
      }
    } finally {
      process.off("SIGINT", onSignal);
    }
    return EXIT.OK;
  },
};

export const liveGroups: GroupSpec[] = [
  { name: "status", summary: status.summary, commands: [status] },
  { name: "tail", summary: tail.summary, commands: [tail] },
];
