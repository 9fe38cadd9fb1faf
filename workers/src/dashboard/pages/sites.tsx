/**
 * Sites: the list with live health and the last hour's charts, and each site's
 * page: live window, charts, the current policy and why, its rules' states,
 * timing settings, the kill switch (with a confirmation step) and deletion.
 */
import type { Hono } from "hono";
import type { Child } from "hono/jsx";
import { ApiError, type ErrorCode } from "../../errors.js";
import { siteEventStream } from "../../lib/events.js";
import { query, seg } from "../api.js";
import type { DashContext, DashEnv } from "../context.js";
import { explainPolicy } from "../explain.js";
import { fieldErrors, numOrNull, text, type FieldErrors } from "../forms.js";
import type { ApiKey, Rollup, Site, SiteStatus, Tag } from "../types.js";
import { LineChart, chartMinutes, lastMinutes, type ChartSeries } from "../ui/chart.js";
import { fmtAgo, fmtInt, fmtMs, fmtNum, fmtPct, fmtTime, fmtWeight, ruleAction, ruleCondition } from "../ui/format.js";
import { Badge, Card, CsrfField, Field, Flash, Layout, Stat, TableWrap } from "../ui/layout.js";
import { FirstPulse } from "../ui/snippets.js";
import { ConfirmPage, can, doneFlash, failurePage, redirectDone, render, shell, valueOf } from "./shared.js";

/** The tag the aggregator's rollups use for a site's totals. */
const SITE_ROLLUP_TAG = "__site__";
/** The sites list reloads this often (a site's own page follows its event stream instead). @default 10 */
const LIVE_REFRESH_SECONDS = 10;
/** The list shows live numbers for this many sites (one aggregator call each). */
const LIVE_SITES_ON_LIST = 24;
const TIMING_FIELDS = ["pulseIntervalMs", "leaseDurationSeconds", "windowSeconds"] as const;
const COLORS = { calls: "#2457d6", bounced: "#d97706", errors: "#b42318", p50: "#0f766e", p95: "#7c3aed", p99: "#be185d" };

// ------------------------------------------------------------ charts from rollups

/** One value per minute of `minutes` from the site's `__site__` rollups. */
function perMinute(
  rollups: readonly Rollup[],
  minutes: readonly number[],
  pick: (r: Rollup) => number | null,
  missing: number | null,
): Array<number | null> {
  const byMinute = new Map(rollups.map((r) => [r.minute, r]));
  return minutes.map((m) => {
    const r = byMinute.get(m);
    return r ? pick(r) : missing;
  });
}

function trafficSeries(rollups: readonly Rollup[], minutes: readonly number[]): ChartSeries[] {
  // A minute without a rollup had no traffic: zero, not a gap.
  return [
    { name: "calls/s", color: COLORS.calls, values: perMinute(rollups, minutes, (r) => r.calls / 60, 0) },
    { name: "bounced/s", color: COLORS.bounced, values: perMinute(rollups, minutes, (r) => r.bounced / 60, 0) },
  ];
}

function latencySeries(rollups: readonly Rollup[], minutes: readonly number[]): ChartSeries[] {
  return [
    { name: "p50", color: COLORS.p50, values: perMinute(rollups, minutes, (r) => r.p50, null) },
    { name: "p95", color: COLORS.p95, values: perMinute(rollups, minutes, (r) => r.p95, null) },
    { name: "p99", color: COLORS.p99, values: perMinute(rollups, minutes, (r) => r.p99, null) },
  ];
}

function errorSeries(rollups: readonly Rollup[], minutes: readonly number[]): ChartSeries[] {
  return [
    {
      name: "error rate",
      color: COLORS.errors,
      values: perMinute(rollups, minutes, (r) => (r.calls > 0 ? (r.errors / r.calls) * 100 : 0), null),
    },
  ];
}

const NO_ROLLUPS =
  "No traffic in the last hour yet. Charts fill in a minute after the first pulses (each minute is rolled up when it ends).";
const fmtPctValue = (v: number) => `${fmtNum(v)} %`;
const fmtMsValue = (v: number) => `${fmtNum(v)} ms`;

function lastHourTotals(rollups: readonly Rollup[]) {
  return rollups.reduce((t, r) => ({ calls: t.calls + r.calls, bounced: t.bounced + r.bounced, errors: t.errors + r.errors }), {
    calls: 0,
    bounced: 0,
    errors: 0,
  });
}

function PolicyStatusBadge(props: { status: SiteStatus | null; site: Site }) {
  if (props.site.killSwitch) return <Badge tone="bad">kill switch ON</Badge>;
  if (!props.status) return <Badge tone="muted">no live data</Badge>;
  const s = props.status.policy.status;
  if (s !== "ok") return <Badge tone="warn">{s}</Badge>;
  const shaping = props.status.rules.filter((r) => r.applied).length;
  return shaping > 0 ? <Badge tone="warn">{`${shaping} rule${shaping === 1 ? "" : "s"} applied`}</Badge> : <Badge tone="ok">healthy</Badge>;
}

// ------------------------------------------------------------ the list

/** `wide`: the card has the page's width (a single site), so its charts sit side by side. */
function SiteCard(props: { site: Site; status: SiteStatus | null; rollups: Rollup[]; now: number; wide: boolean }) {
  const { site, status, rollups } = props;
  const minutes = chartMinutes(
    props.now,
    rollups.map((r) => r.minute),
  );
  const w = status?.window;
  const totals = lastHourTotals(rollups);
  const href = `/dashboard/sites/${seg(site.siteId)}`;
  return (
    <section class={`card site-card${site.killSwitch ? " kill-on" : ""}`} data-site={site.siteId}>
      <div class="card-head">
        <h2>
          <a href={href}>{site.siteId}</a>
        </h2>
        <PolicyStatusBadge status={status} site={site} />
      </div>
      <p class="muted small">
        Last pulse {fmtAgo(site.lastPulseAt)}
        {w ? ` · ${w.instances} instance${w.instances === 1 ? "" : "s"} in the ${fmtNum(w.seconds)} s window` : ""}
      </p>
      <div class="stats">
        <Stat label="calls/s" value={w ? fmtNum(w.rps) : "–"} hint="now" />
        <Stat label="error rate" value={w ? fmtPct(w.errorRate) : "–"} hint="now" tone={w && w.errorRate > 0.05 ? "bad" : undefined} />
        <Stat label="p95" value={w ? fmtMs(w.p95) : "–"} hint="now" />
        <Stat
          label="bounced"
          value={fmtInt(totals.bounced)}
          hint={`of ${fmtInt(totals.calls)} calls, last hour`}
          tone={totals.bounced > 0 ? "warn" : undefined}
        />
      </div>
      <div class={props.wide ? "grid two" : "grid"}>
        <LineChart title="Traffic" unit="per s" minutes={minutes} series={trafficSeries(rollups, minutes)} emptyText={NO_ROLLUPS} />
        {rollups.length > 0 ? (
          <LineChart title="Latency" unit="ms" minutes={minutes} series={latencySeries(rollups, minutes)} format={fmtMsValue} />
        ) : null}
      </div>
      <p>
        <a href={href}>Policy, rules and settings →</a>
      </p>
    </section>
  );
}

function CreateSiteForm(props: { csrf: string; form?: Record<string, string> | undefined; errors?: FieldErrors | undefined }) {
  const e = props.errors?.fields ?? {};
  const v = (name: string) => valueOf(props.form, name, "");
  return (
    <form method="post" action="/dashboard/sites">
      <CsrfField token={props.csrf} />
      {props.errors?.general ? <Flash kind="error">{props.errors.general}</Flash> : null}
      <div class="form-grid">
        <Field label="Site id" name="siteId" error={e.siteId} hint="The siteId your SDKs send.">
          <input id="f-siteId" name="siteId" required value={v("siteId")} placeholder="prod" />
        </Field>
        <Field label="Pulse interval (ms)" name="pulseIntervalMs" error={e.pulseIntervalMs} hint="Empty: the plan's.">
          <input id="f-pulseIntervalMs" name="pulseIntervalMs" inputmode="numeric" value={v("pulseIntervalMs")} />
        </Field>
        <Field label="Window (s)" name="windowSeconds" error={e.windowSeconds} hint="Empty: 30 s.">
          <input id="f-windowSeconds" name="windowSeconds" inputmode="decimal" value={v("windowSeconds")} />
        </Field>
        <Field label="Lease (s)" name="leaseDurationSeconds" error={e.leaseDurationSeconds} hint="Empty: the plan's.">
          <input id="f-leaseDurationSeconds" name="leaseDurationSeconds" inputmode="numeric" value={v("leaseDurationSeconds")} />
        </Field>
      </div>
      <div class="form-actions">
        <button type="submit">Create site</button>
      </div>
    </form>
  );
}

async function sitesPage(c: DashContext, createForm?: { form: Record<string, string>; errors: FieldErrors }) {
  const api = c.var.api;
  const now = Date.now();
  const minutes = lastMinutes(now);
  const [sites, telemetry, keys] = await Promise.all([
    api.getAll<"sites", Site>("/v1/sites", "sites"),
    api.get<{ rollups: Rollup[] }>(`/v1/telemetry${query({ tag: SITE_ROLLUP_TAG, from: minutes[0], to: now, limit: 10_000 })}`),
    api.getAll<"apiKeys", ApiKey>("/v1/api-keys", "apiKeys"),
  ]);
  if (!sites.ok) return failurePage(c, sites, "sites");
  const list = sites.data.sites;
  const statuses = await Promise.all(
    list.slice(0, LIVE_SITES_ON_LIST).map(async (site) => {
      const s = await api.get<SiteStatus>(`/v1/sites/${seg(site.siteId)}/status`);
      return s.ok ? s.data : null;
    }),
  );
  const rollups = telemetry.ok ? telemetry.data.rollups : [];
  const activeKey = keys.ok ? (keys.data.apiKeys.find((k) => k.revokedAt === null) ?? null) : null;
  const origin = new URL(c.req.url).origin;
  const body: Child = (
    <>
      <h1>Sites</h1>
      {doneFlash(c)}
      {list.length === 0 ? (
        <>
          <Card title="No sites yet">
            <p class="empty">
              A site is one fleet that shares a policy: every SDK instance with the same <code>siteId</code>. It appears here with its first
              pulse.
            </p>
          </Card>
          <FirstPulse baseUrl={origin} publishKey={activeKey?.publishKey ?? null} />
        </>
      ) : (
        <div class={list.length > 1 ? "grid two" : "grid"}>
          {list.map((site, i) => (
            <SiteCard
              site={site}
              status={statuses[i] ?? null}
              rollups={rollups.filter((r) => r.siteId === site.siteId)}
              now={now}
              wide={list.length === 1}
            />
          ))}
        </div>
      )}
      {can(c, "editor") ? (
        <Card title="Create a site ahead of its first pulse" id="create">
          <p class="muted small">
            Only needed to give a site its own timing before it pulses. Sites are otherwise created by their first pulse.
          </p>
          <CreateSiteForm csrf={c.var.csrf} form={createForm?.form} errors={createForm?.errors} />
        </Card>
      ) : null}
    </>
  );
  return render(
    c,
    <Layout {...shell(c, "sites", "Sites", createForm ? undefined : LIVE_REFRESH_SECONDS)}>{body}</Layout>,
    createForm ? 400 : 200,
  );
}

// ------------------------------------------------------------ one site

function PolicyTable(props: { status: SiteStatus; tags: Tag[]; site: Site }) {
  const rows = explainPolicy(props.status, props.tags);
  const { policy } = props.status;
  return (
    <>
      {policy.killSignal ? (
        <Flash kind="error">
          <strong>Kill switch ON:</strong> every <code>gate()</code> of this site denies with <code>kill_signal</code>, whatever the limits
          below say.
        </Flash>
      ) : null}
      {policy.status === "cap_exceeded" ? (
        <Flash kind="warn">
          The organization's monthly call allowance is used up: policies say cap_exceeded and SDKs fail open (allow everything).
        </Flash>
      ) : null}
      <TableWrap>
        <table data-policy>
          <thead>
            <tr>
              <th>Traffic</th>
              <th class="num">Max weight</th>
              <th>Why</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr data-policy-tag={row.tag ?? "*"} class={row.limit === 0 ? "hot" : undefined}>
                <td>{row.tag === null ? <strong>all traffic (global)</strong> : <code>{row.tag}</code>}</td>
                <td class="num">
                  <Badge tone={row.tone}>{row.limit === 0 ? "0 · blocked" : fmtWeight(row.limit)}</Badge>
                </td>
                <td class="small">{row.why}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableWrap>
      <p class="muted small">
        Policy version {policy.version}, issued {fmtTime(policy.issuedAt ?? null)}. A request passes <code>gate(tag, weight)</code> when its
        weight is at most the max weight (0 denies everything of that tag).
      </p>
    </>
  );
}

function RuleStates(props: { status: SiteStatus }) {
  const rules = props.status.rules;
  if (rules.length === 0) {
    return (
      <p class="muted">
        No reflex rules apply to this site. <a href="/dashboard/rules#create">Create one</a>, e.g. “when p95_latency &gt; 500 then block
        free”.
      </p>
    );
  }
  return (
    <TableWrap>
      <table data-rule-states>
        <thead>
          <tr>
            <th class="num">Priority</th>
            <th>When</th>
            <th>Then</th>
            <th class="num">Value now</th>
            <th>State</th>
          </tr>
        </thead>
        <tbody>
          {rules.map((r) => (
            <tr data-rule={r.id} class={r.applied ? "hot" : !r.enabled ? "muted" : undefined}>
              <td class="num">{r.priority}</td>
              <td>
                <code>{ruleCondition(r)}</code>
              </td>
              <td>{ruleAction(r)}</td>
              <td class="num">{fmtNum(r.value)}</td>
              <td>
                {!r.enabled ? (
                  <Badge tone="muted">disabled</Badge>
                ) : r.applied ? (
                  <Badge tone="bad">fired · applied</Badge>
                ) : r.active ? (
                  <Badge tone="warn">fired · shadowed</Badge>
                ) : (
                  <Badge tone="ok">idle</Badge>
                )}
                {r.firedAt ? <div class="muted small">since {fmtAgo(r.firedAt)}</div> : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

function EventsTable(props: { status: SiteStatus }) {
  const events = props.status.events;
  if (events.length === 0) return <p class="muted">No rule has fired on this site yet.</p>;
  return (
    <TableWrap>
      <table data-events>
        <thead>
          <tr>
            <th>When</th>
            <th>Event</th>
            <th>Rule</th>
            <th>Condition</th>
            <th class="num">Value</th>
          </tr>
        </thead>
        <tbody>
          {events.map((e) => (
            <tr>
              <td class="nowrap">{fmtAgo(e.at)}</td>
              <td>{e.kind === "fired" ? <Badge tone="bad">fired</Badge> : <Badge tone="ok">cleared</Badge>}</td>
              <td>
                <code>{e.ruleId}</code>
              </td>
              <td>{e.metric ? <code>{ruleCondition(e)}</code> : <span class="muted">rule deleted</span>}</td>
              <td class="num">{fmtNum(e.value ?? null)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

function TagWindow(props: { status: SiteStatus }) {
  const entries = Object.entries(props.status.tags);
  if (entries.length === 0) return <p class="muted">No pulses in the window.</p>;
  return (
    <TableWrap>
      <table>
        <thead>
          <tr>
            <th>Tag</th>
            <th class="num">calls/s</th>
            <th class="num">errors</th>
            <th class="num">p50</th>
            <th class="num">p95</th>
            <th class="num">p99</th>
          </tr>
        </thead>
        <tbody>
          {entries.map(([tag, n]) => (
            <tr>
              <td>
                <code>{tag}</code>
              </td>
              <td class="num">{fmtNum(n.rps)}</td>
              <td class="num">{fmtInt(n.errors)}</td>
              <td class="num">{fmtMs(n.p50)}</td>
              <td class="num">{fmtMs(n.p95)}</td>
              <td class="num">{fmtMs(n.p99)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

function TimingForm(props: { csrf: string; site: Site; form?: Record<string, string> | undefined; errors?: FieldErrors | undefined }) {
  const { site } = props;
  const e = props.errors?.fields ?? {};
  const action = `/dashboard/sites/${seg(site.siteId)}/timing`;
  return (
    <form method="post" action={action} id="timing">
      <CsrfField token={props.csrf} />
      {props.errors?.general ? <Flash kind="error">{props.errors.general}</Flash> : null}
      <div class="form-grid">
        <Field
          label="Pulse interval (ms)"
          name="pulseIntervalMs"
          error={e.pulseIntervalMs}
          hint={`Now ${fmtInt(site.timing.pulseIntervalMs)} ms. Empty: the plan's.`}
        >
          <input
            id="f-pulseIntervalMs"
            name="pulseIntervalMs"
            inputmode="numeric"
            value={valueOf(props.form, "pulseIntervalMs", site.settings.pulseIntervalMs)}
          />
        </Field>
        <Field
          label="Window (s)"
          name="windowSeconds"
          error={e.windowSeconds}
          hint={`Now ${fmtNum(site.timing.windowSeconds)} s: what the rules read. Empty: 30 s.`}
        >
          <input
            id="f-windowSeconds"
            name="windowSeconds"
            inputmode="decimal"
            value={valueOf(props.form, "windowSeconds", site.settings.windowSeconds)}
          />
        </Field>
        <Field
          label="Lease (s)"
          name="leaseDurationSeconds"
          error={e.leaseDurationSeconds}
          hint={`Now ${fmtInt(site.timing.leaseDurationSeconds)} s. Empty: the plan's.`}
        >
          <input
            id="f-leaseDurationSeconds"
            name="leaseDurationSeconds"
            inputmode="numeric"
            value={valueOf(props.form, "leaseDurationSeconds", site.settings.leaseDurationSeconds)}
          />
        </Field>
      </div>
      <div class="form-actions">
        <button type="submit">Save timing</button>
      </div>
    </form>
  );
}

async function sitePage(c: DashContext, siteId: string, timingForm?: { form: Record<string, string>; errors: FieldErrors }) {
  const api = c.var.api;
  const now = Date.now();
  const hour = lastMinutes(now);
  const path = `/v1/sites/${seg(siteId)}`;
  const [site, status, telemetry, tags] = await Promise.all([
    api.get<Site>(path),
    api.get<SiteStatus>(`${path}/status`),
    api.get<{ rollups: Rollup[] }>(`/v1/telemetry${query({ siteId, tag: SITE_ROLLUP_TAG, from: hour[0], to: now })}`),
    api.getAll<"tags", Tag>("/v1/tags", "tags"),
  ]);
  if (!site.ok) return failurePage(c, site, "sites", { href: "/dashboard/sites", label: "All sites" });
  if (!status.ok) return failurePage(c, status, "sites", { href: "/dashboard/sites", label: "All sites" });
  const s = status.data;
  const w = s.window;
  const rollups = telemetry.ok ? telemetry.data.rollups : [];
  const minutes = chartMinutes(
    now,
    rollups.map((r) => r.minute),
  );
  const live = liveSections(c, site.data, s, tags.ok ? tags.data.tags : []);
  const body = (
    <>
      <p class="small">
        <a href="/dashboard/sites">← Sites</a>
      </p>
      <h1>
        <span>{site.data.siteId}</span> <span data-live="badge">{live.badge}</span>{" "}
        <span class="muted small" id="live-state" data-state="connecting">
          connecting…
        </span>
      </h1>
      {doneFlash(c)}
      <div data-live="kill">{live.kill}</div>
      <div data-live="stats">{live.stats}</div>
      <Card title="Last hour">
        <div class="grid three">
          <LineChart title="Traffic" unit="per s" minutes={minutes} series={trafficSeries(rollups, minutes)} emptyText={NO_ROLLUPS} />
          <LineChart
            title="Error rate"
            unit="%"
            minutes={minutes}
            series={errorSeries(rollups, minutes)}
            format={fmtPctValue}
            emptyText="No traffic in the last hour yet."
          />
          <LineChart
            title="Latency"
            unit="ms"
            minutes={minutes}
            series={latencySeries(rollups, minutes)}
            format={fmtMsValue}
            emptyText="No latency reported in the last hour yet."
          />
        </div>
      </Card>
      {w.pulses === 0 && site.data.lastPulseAt === null ? (
        <FirstPulse baseUrl={new URL(c.req.url).origin} publishKey={null} siteId={siteId} />
      ) : null}
      <Card title="Current policy" id="policy">
        <div data-live="policy">{live.policy}</div>
      </Card>
      <Card
        title="Reflex rules on this site"
        id="rules"
        actions={
          <a class="button secondary small" href={`/dashboard/rules${query({ siteId })}`}>
            {can(c, "editor") ? "Edit rules" : "All rules"}
          </a>
        }
      >
        <div data-live="rules">{live.rules}</div>
        <h3>Recent fires and clears</h3>
        <div data-live="events">{live.events}</div>
      </Card>
      <div class="grid two">
        <Card title="Tags in the window">
          <div data-live="tags">{live.tags}</div>
        </Card>
        <Card title="Timing">
          {can(c, "editor") ? (
            <TimingForm csrf={c.var.csrf} site={site.data} form={timingForm?.form} errors={timingForm?.errors} />
          ) : (
            <p class="small">
              pulse every {fmtInt(site.data.timing.pulseIntervalMs)} ms · window {fmtNum(site.data.timing.windowSeconds)} s · lease{" "}
              {fmtInt(site.data.timing.leaseDurationSeconds)} s
            </p>
          )}
        </Card>
      </div>
      {can(c, "admin") ? (
        <Card title="Delete this site">
          <p class="muted small">Forgets its telemetry, events, aggregator state and cached policy. A later pulse creates it again.</p>
          <a class="button danger-outline" href={`/dashboard/sites/${seg(siteId)}/delete`}>
            Delete site…
          </a>
        </Card>
      ) : null}
    </>
  );
  return render(
    c,
    <Layout {...shell(c, "sites", siteId)} liveUrl={`/dashboard/sites/${seg(siteId)}/live`}>
      {body}
    </Layout>,
    timingForm ? 400 : 200,
  );
}

/**
 * The parts of the site page that change with the site's state, each rendered
 * from one status. The page renders them once; the live stream renders them
 * again for every status the aggregator pushes and the page swaps them in.
 */
function liveSections(c: DashContext, site: Site, s: SiteStatus, tags: Tag[]): Record<string, Child> {
  const w = s.window;
  const kill = s.policy.killSignal;
  const current = { ...site, killSwitch: kill };
  const killHref = `/dashboard/sites/${seg(site.siteId)}/kill?on=${kill ? "0" : "1"}`;
  return {
    badge: <PolicyStatusBadge status={s} site={current} />,
    kill: (
      <section class={`card${kill ? " kill-on" : ""}`} id="kill">
        <div class="card-head">
          <h2>Kill switch: {kill ? <Badge tone="bad">ON</Badge> : <Badge tone="ok">off</Badge>}</h2>
          {can(c, "editor") ? (
            <a class={`button ${kill ? "secondary" : "danger"}`} href={killHref} data-action="kill">
              {kill ? "Turn kill switch off…" : "Turn kill switch on…"}
            </a>
          ) : null}
        </div>
        <p class="muted small">
          {kill
            ? "Every gate() of this site is denying all traffic (kill_signal)."
            : "The emergency stop: every gate() of this site denies all traffic until you turn it off."}
        </p>
      </section>
    ),
    stats: (
      <div class="stats">
        <Stat label="instances" value={fmtInt(w.instances)} hint={`in the ${fmtNum(w.seconds)} s window`} />
        <Stat label="calls/s" value={fmtNum(w.rps)} hint={`${fmtInt(w.calls)} calls`} />
        <Stat label="errors" value={fmtInt(w.errors)} hint={fmtPct(w.errorRate)} tone={w.errorRate > 0.05 ? "bad" : undefined} />
        <Stat label="p50" value={fmtMs(w.p50)} />
        <Stat label="p95" value={fmtMs(w.p95)} />
        <Stat label="p99" value={fmtMs(w.p99)} />
      </div>
    ),
    policy: <PolicyTable status={s} tags={tags} site={current} />,
    rules: <RuleStates status={s} />,
    events: <EventsTable status={s} />,
    tags: <TagWindow status={s} />,
  };
}

/**
 * `GET /dashboard/sites/:id/live`: the site's events (the same stream as
 * `GET /v1/sites/:id/events`) as the page's sections rendered to HTML, one
 * `html` event per status. The session's access to the site is the API's answer.
 */
async function liveStream(c: DashContext, siteId: string): Promise<Response> {
  const api = c.var.api;
  const [site, tags] = await Promise.all([api.get<Site>(`/v1/sites/${seg(siteId)}`), api.getAll<"tags", Tag>("/v1/tags", "tags")]);
  if (!site.ok) throw new ApiError(site.code as ErrorCode, site.message);
  const tagList = tags.ok ? tags.data.tags : [];
  return siteEventStream(c.env, c.var.org.id, siteId, async (message) => {
    if (message.type !== "status") return [];
    const sections = liveSections(c, site.data, { siteId, ...(message.status as Omit<SiteStatus, "siteId">) }, tagList);
    const html: Record<string, string> = {};
    for (const [name, node] of Object.entries(sections)) html[name] = String(await node);
    return [["html", JSON.stringify(html)]];
  });
}

export function registerSitePages(dash: Hono<DashEnv>) {
  dash.get("/sites", (c) => sitesPage(c));

  dash.post("/sites", async (c) => {
    const form = c.var.form;
    const body = {
      siteId: text(form, "siteId") ?? "",
      pulseIntervalMs: numOrNull(form, "pulseIntervalMs"),
      leaseDurationSeconds: numOrNull(form, "leaseDurationSeconds"),
      windowSeconds: numOrNull(form, "windowSeconds"),
    };
    const created = await c.var.api.post<Site>("/v1/sites", body);
    if (!created.ok) return sitesPage(c, { form, errors: fieldErrors(created, ["siteId", ...TIMING_FIELDS]) });
    return redirectDone(c, `/dashboard/sites/${seg(created.data.siteId)}`, "site.created");
  });

  dash.get("/sites/:id", (c) => sitePage(c, c.req.param("id")));
  dash.get("/sites/:id/live", (c) => liveStream(c, c.req.param("id")));

  dash.post("/sites/:id/timing", async (c) => {
    const siteId = c.req.param("id");
    const form = c.var.form;
    const patch = Object.fromEntries(TIMING_FIELDS.map((f) => [f, numOrNull(form, f)]));
    const updated = await c.var.api.patch<Site>(`/v1/sites/${seg(siteId)}`, patch);
    if (!updated.ok) {
      if (updated.status === 404) return failurePage(c, updated, "sites");
      return sitePage(c, siteId, { form, errors: fieldErrors(updated, TIMING_FIELDS) });
    }
    return redirectDone(c, `/dashboard/sites/${seg(siteId)}`, "site.updated");
  });

  // The kill switch: a GET shows what will happen, only the confirmation's POST acts.
  const killConfirm = async (c: DashContext, on: boolean, error?: string) => {
    const siteId = c.req.param("id") ?? "";
    const site = await c.var.api.get<Site>(`/v1/sites/${seg(siteId)}`);
    if (!site.ok) return failurePage(c, site, "sites");
    const message = on ? (
      <p>
        Every <code>gate()</code> of <strong>{site.data.siteId}</strong> will deny <em>all</em> traffic with <code>kill_signal</code> from
        each instance's next sync (within a pulse interval, {fmtInt(site.data.timing.pulseIntervalMs)} ms), until you turn it off.
      </p>
    ) : (
      <p>
        Traffic of <strong>{site.data.siteId}</strong> goes back to its reflex rules from each instance's next sync.
      </p>
    );
    const page = (
      <ConfirmPage
        c={c}
        section="sites"
        title={on ? `Turn the kill switch ON for ${site.data.siteId}?` : `Turn the kill switch off for ${site.data.siteId}?`}
        message={message}
        action={`/dashboard/sites/${seg(siteId)}/kill`}
        fields={{ enabled: on ? "true" : "false" }}
        submit={on ? "Deny all traffic" : "Turn kill switch off"}
        danger={on}
        cancel={`/dashboard/sites/${seg(siteId)}`}
        typeToConfirm={on ? site.data.siteId : undefined}
        error={error}
      />
    );
    return render(c, page, error ? 400 : 200);
  };

  dash.get("/sites/:id/kill", (c) => killConfirm(c, c.req.query("on") !== "0"));

  dash.post("/sites/:id/kill", async (c) => {
    const siteId = c.req.param("id");
    const form = c.var.form;
    const enabled = form.enabled === "true";
    // Turning it on is the dangerous direction: the site id must be typed, as on the confirmation page.
    if (enabled && form.confirm !== siteId) return killConfirm(c, true, `Type “${siteId}” exactly to confirm.`);
    const result = await c.var.api.post(`/v1/sites/${seg(siteId)}/kill`, { enabled });
    if (!result.ok) return failurePage(c, result, "sites");
    return redirectDone(c, `/dashboard/sites/${seg(siteId)}`, enabled ? "kill.on" : "kill.off");
  });

  const deleteConfirm = async (c: DashContext, error?: string) => {
    const siteId = c.req.param("id") ?? "";
    const site = await c.var.api.get<Site>(`/v1/sites/${seg(siteId)}`);
    if (!site.ok) return failurePage(c, site, "sites");
    const page = (
      <ConfirmPage
        c={c}
        section="sites"
        title={`Delete site ${site.data.siteId}?`}
        message={
          <p>
            Its telemetry, reflex events, aggregator state and cached policy are deleted. Site-scoped rules stay and apply again if it comes
            back.
          </p>
        }
        action={`/dashboard/sites/${seg(siteId)}/delete`}
        fields={{}}
        submit="Delete site"
        danger
        cancel={`/dashboard/sites/${seg(siteId)}`}
        typeToConfirm={site.data.siteId}
        error={error}
      />
    );
    return render(c, page, error ? 400 : 200);
  };

  dash.get("/sites/:id/delete", (c) => deleteConfirm(c));

  dash.post("/sites/:id/delete", async (c) => {
    const siteId = c.req.param("id");
    if (c.var.form.confirm !== siteId) return deleteConfirm(c, `Type “${siteId}” exactly to confirm.`);
    const result = await c.var.api.delete(`/v1/sites/${seg(siteId)}`);
    if (!result.ok) return failurePage(c, result, "sites");
    return redirectDone(c, "/dashboard/sites", "site.deleted");
  });
}
