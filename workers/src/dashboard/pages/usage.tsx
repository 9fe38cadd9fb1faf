/** Usage against the plan: this month's gate calls, the site count, and what the plan allows. */
import type { Hono } from "hono";
import { PLAN_LIMITS } from "@waitstate/protocol";
import type { DashContext, DashEnv } from "../context.js";
import type { Site, Usage } from "../types.js";
import { fmtInt, fmtPct } from "../ui/format.js";
import { Card, Flash, Layout, Stat, TableWrap } from "../ui/layout.js";
import { failurePage, render, shell } from "./shared.js";

function Meter(props: { used: number; limit: number | null; label: string }) {
  if (props.limit === null) return <p class="muted small">{props.label}: unlimited on this plan.</p>;
  const ratio = props.limit > 0 ? props.used / props.limit : 1;
  return (
    <div>
      <div class="small">
        {props.label}: <strong>{fmtInt(props.used)}</strong> of {fmtInt(props.limit)} ({fmtPct(ratio)})
      </div>
      {/* biome-ignore lint/a11y/useSemanticElements: a styled bar; <meter> cannot be styled alike in every browser */}
      <div class="bar" role="meter" aria-valuemin={0} aria-valuemax={props.limit} aria-valuenow={props.used} aria-label={props.label}>
        <span style={`width:${Math.min(100, Math.max(0, ratio * 100)).toFixed(1)}%;${ratio >= 0.9 ? "background:#b42318" : ""}`} />
      </div>
    </div>
  );
}

async function usagePage(c: DashContext) {
  const month = new Date().toISOString().slice(0, 7);
  const [usage, sites] = await Promise.all([c.var.api.get<Usage>("/v1/usage"), c.var.api.getAll<"sites", Site>("/v1/sites", "sites")]);
  if (!usage.ok) return failurePage(c, usage, "usage");
  const plan = usage.data.plan;
  const limits = PLAN_LIMITS[plan];
  const current = usage.data.usage.find((u) => u.month === month) ?? { month, calls: 0, bounced: 0 };
  const siteCount = sites.ok ? sites.data.sites.length : 0;
  const over = usage.data.monthlyCallLimit !== null && current.calls >= usage.data.monthlyCallLimit;
  const body = (
    <>
      <h1>Usage</h1>
      {over ? (
        <Flash kind="warn">
          This month's call allowance is used up: policies say cap_exceeded and every SDK fails open until the month ends.
        </Flash>
      ) : null}
      <div class="stats">
        <Stat label="plan" value={plan} />
        <Stat label={`calls in ${month}`} value={fmtInt(current.calls)} hint="UTC month, trails live traffic by ~1 min" />
        <Stat
          label="bounced"
          value={fmtInt(current.bounced)}
          hint={current.calls > 0 ? `${fmtPct(current.bounced / current.calls)} of calls` : undefined}
        />
        <Stat label="sites" value={fmtInt(siteCount)} hint={limits.sites === null ? "unlimited" : `of ${limits.sites}`} />
      </div>
      <Card title="Against the plan">
        <Meter label="Gate calls this month" used={current.calls} limit={usage.data.monthlyCallLimit} />
        <Meter label="Sites" used={siteCount} limit={limits.sites} />
        <dl class="kv">
          <dt>Pulse interval</dt>
          <dd>
            {plan === "enterprise"
              ? `${fmtInt(limits.pulseIntervalMs)} ms (down to 250 ms per site)`
              : `${fmtInt(limits.pulseIntervalMs)} ms`}
          </dd>
          <dt>Lease</dt>
          <dd>{fmtInt(limits.leaseSeconds)} s</dd>
          <dt>Custom metrics in rules</dt>
          <dd>{limits.customMetricsPerTag === null ? "unlimited" : `${limits.customMetricsPerTag} per tag`}</dd>
        </dl>
      </Card>
      <Card title="By month">
        {usage.data.usage.length === 0 ? (
          <p class="empty">No calls counted yet. Usage is the gate() calls your SDKs report in their pulses, written each minute.</p>
        ) : (
          <TableWrap>
            <table data-usage>
              <thead>
                <tr>
                  <th>Month</th>
                  <th class="num">Calls</th>
                  <th class="num">Bounced</th>
                  <th class="num">Of allowance</th>
                </tr>
              </thead>
              <tbody>
                {usage.data.usage.map((u) => (
                  <tr>
                    <td>{u.month}</td>
                    <td class="num">{fmtInt(u.calls)}</td>
                    <td class="num">{fmtInt(u.bounced)}</td>
                    <td class="num">{usage.data.monthlyCallLimit === null ? "–" : fmtPct(u.calls / usage.data.monthlyCallLimit)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
        )}
      </Card>
    </>
  );
  return render(c, <Layout {...shell(c, "usage", "Usage")}>{body}</Layout>);
}

export function registerUsagePages(dash: Hono<DashEnv>) {
  dash.get("/usage", (c) => usagePage(c));
}
