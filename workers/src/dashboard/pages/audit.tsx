/** The audit log: who changed what (before → after) and what the system did on its own, filtered and paged. */
import type { Hono } from "hono";
import type { Child } from "hono/jsx";
import { query, type ApiResult } from "../api.js";
import type { DashContext, DashEnv } from "../context.js";
import { fieldErrors } from "../forms.js";
import type { AuditEntry, Site } from "../types.js";
import { fmtTime } from "../ui/format.js";
import { Badge, Card, Field, Flash, Layout, TableWrap } from "../ui/layout.js";
import { failurePage, render, shell } from "./shared.js";

/** The ranges the filter offers, in ms back from now (null: everything). */
export const AUDIT_RANGES: ReadonlyArray<[string, string, number | null]> = [
  ["1h", "last hour", 3_600_000],
  ["24h", "last 24 hours", 86_400_000],
  ["7d", "last 7 days", 7 * 86_400_000],
  ["30d", "last 30 days", 30 * 86_400_000],
  ["all", "all time", null],
];
const PAGE_SIZE = 50;

/** True when the API itself has no such route (this control plane predates it), rather than a missing record. */
export function routeMissing(result: ApiResult<unknown>): boolean {
  return !result.ok && result.status === 404 && result.message.startsWith("No route for");
}

function show(value: unknown): string {
  if (value === undefined) return "–";
  // Metric values are floats: three decimals say enough.
  const s = typeof value === "number" && !Number.isInteger(value) ? String(Math.round(value * 1000) / 1000) : JSON.stringify(value);
  return s.length > 120 ? `${s.slice(0, 117)}…` : s;
}

/** What changed: each key whose value differs, before → after. A creation or deletion lists its fields once. */
export function Change(props: { entry: AuditEntry }) {
  const { before, after, details } = props.entry;
  const lines: Child[] = [];
  if (before && after) {
    for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
      if (key === "updatedAt" || key === "createdAt" || JSON.stringify(before[key]) === JSON.stringify(after[key])) continue;
      lines.push(
        <div>
          {key}: <del>{show(before[key])}</del> → <ins>{show(after[key])}</ins>
        </div>,
      );
    }
  } else if (after || before) {
    const record = (after ?? before)!;
    const sign = after ? "+" : "−";
    lines.push(
      <div>
        {sign}{" "}
        {Object.entries(record)
          .filter(([k]) => k !== "createdAt" && k !== "updatedAt")
          .map(([k, v]) => `${k}=${show(v)}`)
          .join(" ")}
      </div>,
    );
  }
  if (details) {
    lines.push(
      <div class="muted">
        {Object.entries(details)
          .map(([k, v]) => `${k}=${show(v)}`)
          .join(" ")}
      </div>,
    );
  }
  return <div class="diff">{lines.length > 0 ? lines : <span class="muted">–</span>}</div>;
}

function actorOf(entry: AuditEntry): string {
  const a = entry.actor;
  if (a.type === "system") return "system";
  return [a.type, a.name ?? a.id].filter(Boolean).join(" · ");
}

async function auditPage(c: DashContext) {
  const siteId = c.req.query("siteId") || null;
  const kind = c.req.query("kind") || null;
  const rangeKey = AUDIT_RANGES.some(([k]) => k === c.req.query("range")) ? c.req.query("range")! : "7d";
  const rangeMs = AUDIT_RANGES.find(([k]) => k === rangeKey)?.[2] ?? null;
  const cursor = c.req.query("cursor") || null;
  const from = rangeMs === null ? null : Date.now() - rangeMs;
  const [log, sites] = await Promise.all([
    c.var.api.get<{ entries: AuditEntry[]; nextCursor: string | null }>(
      `/v1/audit-log${query({ siteId, kind, from, limit: PAGE_SIZE, cursor })}`,
    ),
    c.var.api.getAll<"sites", Site>("/v1/sites", "sites"),
  ]);
  if (routeMissing(log)) {
    return render(
      c,
      <Layout {...shell(c, "audit", "Audit log")}>
        <h1>Audit log</h1>
        <Flash kind="warn">This control plane has no audit log API (GET /v1/audit-log) yet.</Flash>
      </Layout>,
      501,
    );
  }
  const invalid = !log.ok && log.status === 400 ? fieldErrors(log, ["siteId", "kind", "from", "to", "cursor", "limit"]) : null;
  if (!log.ok && !invalid) return failurePage(c, log, "audit");
  const entries = log.ok ? log.data.entries : [];
  const nextCursor = log.ok ? log.data.nextCursor : null;
  const filters = { siteId, kind, range: rangeKey };
  const body = (
    <>
      <h1>Audit log</h1>
      <Card title="Filter">
        <form method="get" action="/dashboard/audit">
          {invalid?.general ? <Flash kind="error">{invalid.general}</Flash> : null}
          <div class="form-grid">
            <Field label="Site" name="siteId" error={invalid?.fields.siteId}>
              <select id="f-siteId" name="siteId">
                <option value="">all sites and org-wide</option>
                {(sites.ok ? sites.data.sites : []).map((s) => (
                  <option value={s.siteId} selected={s.siteId === siteId}>
                    {s.siteId}
                  </option>
                ))}
              </select>
            </Field>
            <Field label="Event" name="kind" error={invalid?.fields.kind} hint="Exact (kill.on) or a prefix (rule.*)">
              <input id="f-kind" name="kind" value={kind ?? ""} placeholder="rule.*" autocomplete="off" />
            </Field>
            <Field label="When" name="range" error={invalid?.fields.from}>
              <select id="f-range" name="range">
                {AUDIT_RANGES.map(([key, label]) => (
                  <option value={key} selected={key === rangeKey}>
                    {label}
                  </option>
                ))}
              </select>
            </Field>
          </div>
          <div class="form-actions">
            <button type="submit" class="secondary">
              Apply
            </button>
            <a href="/dashboard/audit">Reset</a>
          </div>
        </form>
      </Card>
      <Card title={cursor ? "Older entries" : "Newest first"}>
        {entries.length === 0 ? (
          <p class="empty">
            {invalid
              ? "Fix the filter above."
              : "Nothing recorded for this filter. Every change made here, by the API or the CLI, and every rule fire or clear appears in this log."}
          </p>
        ) : (
          <TableWrap>
            <table data-audit>
              <thead>
                <tr>
                  <th>When</th>
                  <th>Site</th>
                  <th>Actor</th>
                  <th>Event</th>
                  <th>Target</th>
                  <th>Change</th>
                </tr>
              </thead>
              <tbody>
                {entries.map((e) => (
                  <tr data-audit-kind={e.kind}>
                    <td class="nowrap small">{fmtTime(e.at)}</td>
                    <td>{e.siteId ?? <span class="muted">org</span>}</td>
                    <td class="small">{actorOf(e)}</td>
                    <td>
                      <Badge
                        tone={
                          e.kind.startsWith("rule.fired") || e.kind === "kill.on" || e.kind === "cap_exceeded"
                            ? "bad"
                            : e.actor.type === "system"
                              ? "info"
                              : "muted"
                        }
                      >
                        {e.kind}
                      </Badge>
                    </td>
                    <td>{e.target ? <code>{e.target}</code> : <span class="muted">–</span>}</td>
                    <td>
                      <Change entry={e} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
        )}
        <div class="pager">
          {cursor ? <a href={`/dashboard/audit${query(filters)}`}>Newest</a> : null}
          {nextCursor ? (
            <a class="button secondary small" href={`/dashboard/audit${query({ ...filters, cursor: nextCursor })}`}>
              Older →
            </a>
          ) : null}
        </div>
      </Card>
    </>
  );
  return render(c, <Layout {...shell(c, "audit", "Audit log")}>{body}</Layout>, invalid ? 400 : 200);
}

export function registerAuditPages(dash: Hono<DashEnv>) {
  dash.get("/audit", (c) => auditPage(c));
}
