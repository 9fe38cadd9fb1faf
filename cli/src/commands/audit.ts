/** audit: the audit log (management changes and automatic actions), newest first. */
import type { CommandSpec, GroupSpec } from "../command.js";
import { usageError } from "../errors.js";
import { OPERATOR_SYMBOL, clip, fmtNum, fmtTime } from "../output.js";

interface Actor {
  type: string;
  id: string | null;
  name: string | null;
}
export interface AuditEntry {
  id: string;
  at: number;
  siteId: string | null;
  actor: Actor;
  kind: string;
  target: string | null;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  details: Record<string, unknown> | null;
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `15m`, `2h`, `7d` ago; epoch ms; or a date (`2026-11-01`, ISO 8601). */
export function parseWhen(raw: string, flag: string, now = Date.now()): number {
  const rel = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(raw.trim());
  if (rel) return Math.round(now - Number(rel[1]) * UNITS[rel[2]!]!);
  if (/^\d{10,}$/.test(raw.trim())) return Number(raw.trim());
  const parsed = Date.parse(raw);
  if (Number.isNaN(parsed)) throw usageError(`${flag} must be a duration (15m, 2h, 7d), epoch milliseconds or a date, got "${raw}"`);
  return parsed;
}

function short(v: unknown): string {
  if (v === null || v === undefined) return "null";
  if (typeof v === "string") return v;
  if (typeof v === "number" && !Number.isInteger(v)) return String(Math.round(v * 1000) / 1000);
  return JSON.stringify(v);
}

/** What changed (`threshold: 500 → 300`), or the details (`value=612, threshold=500`). */
export function summarize(e: AuditEntry): string {
  const d = e.details;
  if ((e.kind === "rule.fired" || e.kind === "rule.cleared") && d && typeof d.metric === "string") {
    // `p95_latency 612.4 > 500: block free`
    const metric = typeof d.metricTag === "string" ? `${d.metric}[${d.metricTag}]` : d.metric;
    const value = typeof d.value === "number" ? fmtNum(d.value) : "no data";
    const action = d.action === "throttle" && typeof d.actionValue === "number" ? `throttle x${d.actionValue}` : String(d.action ?? "");
    const target = typeof d.tagName === "string" ? d.tagName : "(all traffic)";
    return clip(
      `${metric} ${value} ${OPERATOR_SYMBOL[String(d.operator)] ?? String(d.operator)} ${short(d.threshold)}${action ? `: ${action} ${target}` : ""}`,
      90,
    );
  }
  const parts: string[] = [];
  if (e.before && e.after) {
    for (const key of new Set([...Object.keys(e.before), ...Object.keys(e.after)])) {
      if (key === "updatedAt") continue;
      if (JSON.stringify(e.before[key]) !== JSON.stringify(e.after[key]))
        parts.push(`${key}: ${short(e.before[key])} → ${short(e.after[key])}`);
    }
  }
  if (e.details) for (const [k, v] of Object.entries(e.details)) parts.push(`${k}=${short(v)}`);
  if (parts.length === 0 && e.after && !e.before) parts.push("created");
  if (parts.length === 0 && e.before && !e.after) parts.push("deleted");
  return clip(parts.join(", "), 90);
}

export function fmtActor(a: Actor): string {
  return a.name ? `${a.type}:${a.name}` : a.id ? `${a.type}:${a.id}` : a.type;
}

const audit: CommandSpec = {
  path: ["audit"],
  summary: "the audit log: who changed what, and what the rules did",
  options: {
    site: { type: "string", value: "<site-id>", description: "only this site's entries" },
    kind: { type: "string", value: "<kind>", description: "an exact kind (rule.updated) or a prefix (rule.*)" },
    since: { type: "string", value: "<when>", description: "from: 15m, 2h, 7d ago, epoch ms or a date" },
    until: { type: "string", value: "<when>", description: "to: same forms as --since" },
    limit: { type: "string", value: "<n>", description: "at most n entries, 1–200 (default 50)" },
    cursor: { type: "string", value: "<cursor>", description: "the next page (printed after a full page)" },
  },
  examples: ["waitstate audit --site prod --kind 'rule.*' --since 1h", "waitstate audit --kind kill.on --limit 5 --json"],
  async run(ctx) {
    const now = Date.now();
    const since = ctx.str("since");
    const until = ctx.str("until");
    const limit = ctx.num("limit", { int: true });
    const query = {
      siteId: ctx.str("site"),
      kind: ctx.str("kind"),
      from: since === undefined ? undefined : parseWhen(since, "--since", now),
      to: until === undefined ? undefined : parseWhen(until, "--until", now),
      limit,
      cursor: ctx.str("cursor"),
    };
    const body = await ctx.api().get<{ entries: AuditEntry[]; nextCursor: string | null }>("/v1/audit-log", query);
    if (ctx.json) return ctx.out.printJson(body);
    if (body.entries.length === 0) return ctx.out.line("No audit entries match.");
    ctx.out.table(
      [{ header: "TIME" }, { header: "KIND" }, { header: "SITE" }, { header: "ACTOR" }, { header: "TARGET" }, { header: "CHANGE" }],
      body.entries.map((e) => [fmtTime(e.at), e.kind, e.siteId ?? "-", fmtActor(e.actor), e.target ?? "-", summarize(e)]),
    );
    if (body.nextCursor) ctx.out.note(`More: add --cursor ${body.nextCursor}`);
  },
};

export const auditGroup: GroupSpec = { name: "audit", summary: audit.summary, commands: [audit] };
