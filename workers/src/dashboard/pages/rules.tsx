/**
 * Reflex rules: the org's rules by priority (the order they apply in), with
 * enable/disable, reorder, edit and delete; a create form that shows the API's
 * validation messages next to the fields they name.
 */
import type { Hono } from "hono";
import { BUILTIN_METRICS, DEFAULT_RULE_COOLDOWN_SECONDS } from "@waitstate/protocol";
import { query, seg } from "../api.js";
import type { DashContext, DashEnv, FormFields } from "../context.js";
import { checkbox, fieldErrors, num, numOrNull, text, type FieldErrors } from "../forms.js";
import type { Rule, Site, Tag } from "../types.js";
import { fmtAgo, ruleAction, ruleCondition } from "../ui/format.js";
import { Badge, Card, CsrfField, Field, Flash, Layout, TableWrap } from "../ui/layout.js";
import { RULE_FIELDS } from "../../routes/v1_reflex_rules.js";
import { can, doneFlash, failurePage, redirectDone, render, shell, valueOf } from "./shared.js";

const MAX_PRIORITY = 1_000_000;

/** The API body a rule form describes. Types only: the API validates the values. */
export function ruleBody(form: FormFields) {
  const action = form.action ?? "";
  return {
    siteId: text(form, "siteId"),
    tagName: text(form, "tagName"),
    metric: text(form, "metric") ?? "",
    metricTag: text(form, "metricTag"),
    operator: form.operator ?? "",
    threshold: num(form, "threshold"),
    action,
    // A block has no value; the API reads null as "none".
    actionValue: action === "throttle" ? numOrNull(form, "actionValue") : null,
    enabled: checkbox(form, "enabled"),
    priority: num(form, "priority"),
    cooldownSeconds: num(form, "cooldownSeconds") ?? DEFAULT_RULE_COOLDOWN_SECONDS,
  };
}

interface RuleFormProps {
  csrf: string;
  action: string;
  submit: string;
  /** Stored values (edit) or defaults (create). */
  rule: Partial<Rule>;
  form?: FormFields | undefined;
  errors?: FieldErrors | undefined;
  sites: Site[];
  tags: Tag[];
  returnTo?: string | undefined;
}

function RuleForm(props: RuleFormProps) {
  const e = props.errors?.fields ?? {};
  const v = (name: (typeof RULE_FIELDS)[number]) => valueOf(props.form, name, props.rule[name] as string | number | null | undefined);
  const enabled = props.form ? checkbox(props.form, "enabled") : (props.rule.enabled ?? true);
  const op = v("operator") || "gt";
  const act = v("action") || "block";
  return (
    <form method="post" action={props.action} data-form="rule" novalidate>
      <CsrfField token={props.csrf} />
      {props.returnTo ? <input type="hidden" name="returnTo" value={props.returnTo} /> : null}
      {props.errors?.general ? <Flash kind="error">{props.errors.general}</Flash> : null}
      <datalist id="dl-sites">
        {props.sites.map((s) => (
          <option value={s.siteId} />
        ))}
      </datalist>
      <datalist id="dl-tags">
        {props.tags.map((t) => (
          <option value={t.name} />
        ))}
      </datalist>
      <datalist id="dl-metrics">
        {BUILTIN_METRICS.map((m) => (
          <option value={m} />
        ))}
      </datalist>
      <div class="form-grid">
        <Field label="When metric" name="metric" error={e.metric} hint="latency, p95_latency, error_rate, rps… or a custom metric">
          <input id="f-metric" name="metric" list="dl-metrics" value={v("metric")} placeholder="p95_latency" autocomplete="off" />
        </Field>
        <Field label="Operator" name="operator" error={e.operator}>
          <select id="f-operator" name="operator">
            {[
              ["gt", "> greater than"],
              ["gte", "≥ at least"],
              ["lt", "< less than"],
              ["lte", "≤ at most"],
            ].map(([value, label]) => (
              <option value={value} selected={op === value}>
                {label}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Threshold" name="threshold" error={e.threshold} hint="ms for latencies, 0–1 for error_rate">
          <input id="f-threshold" name="threshold" inputmode="decimal" value={v("threshold")} placeholder="500" />
        </Field>
        <Field label="Read from tag" name="metricTag" error={e.metricTag} hint="Empty: the whole site">
          <input id="f-metricTag" name="metricTag" list="dl-tags" value={v("metricTag")} autocomplete="off" />
        </Field>
        <Field label="Then" name="action" error={e.action}>
          <select id="f-action" name="action">
            <option value="block" selected={act === "block"}>
              block
            </option>
            <option value="throttle" selected={act === "throttle"}>
              throttle
            </option>
          </select>
        </Field>
        <Field
          label="Throttle to (0–1)"
          name="actionValue"
          error={e.actionValue}
          hint="Throttle only: multiplies the target's baseline max weight"
        >
          <input id="f-actionValue" name="actionValue" inputmode="decimal" value={v("actionValue")} placeholder="0.5" />
        </Field>
        <Field label="Target tag" name="tagName" error={e.tagName} hint="Empty: all traffic">
          <input id="f-tagName" name="tagName" list="dl-tags" value={v("tagName")} placeholder="free" autocomplete="off" />
        </Field>
        <Field label="Site" name="siteId" error={e.siteId} hint="Empty: every site of the organization">
          <input id="f-siteId" name="siteId" list="dl-sites" value={v("siteId")} autocomplete="off" />
        </Field>
        <Field label="Priority" name="priority" error={e.priority} hint="Lower applies first; first active rule per target wins">
          <input id="f-priority" name="priority" inputmode="numeric" value={v("priority")} />
        </Field>
        <Field
          label="Cooldown (s)"
          name="cooldownSeconds"
          error={e.cooldownSeconds}
          hint={`Keeps applying this long after it stops matching (default ${DEFAULT_RULE_COOLDOWN_SECONDS})`}
        >
          <input id="f-cooldownSeconds" name="cooldownSeconds" inputmode="numeric" value={v("cooldownSeconds")} />
        </Field>
        <Field label="Enabled" name="enabled" error={e.enabled}>
          <label class="check">
            <input id="f-enabled" type="checkbox" name="enabled" checked={enabled} /> rule is enabled
          </label>
        </Field>
      </div>
      <div class="form-actions">
        <button type="submit">{props.submit}</button>
      </div>
    </form>
  );
}

async function loadRefs(c: DashContext) {
  const [sites, tags] = await Promise.all([
    c.var.api.getAll<"sites", Site>("/v1/sites", "sites"),
    c.var.api.getAll<"tags", Tag>("/v1/tags", "tags"),
  ]);
  return { sites: sites.ok ? sites.data.sites : [], tags: tags.ok ? tags.data.tags : [] };
}

function rulesPath(siteId: string | null | undefined): string {
  return `/dashboard/rules${query({ siteId })}`;
}

function RuleRow(props: { rule: Rule; csrf: string; first: boolean; last: boolean; siteFilter: string | null; editable: boolean }) {
  const { rule: r, csrf } = props;
  const base = `/dashboard/rules/${seg(r.id)}`;
  const back = props.siteFilter ? <input type="hidden" name="siteId" value={props.siteFilter} /> : null;
  return (
    <tr data-rule={r.id} class={r.enabled ? undefined : "muted"}>
      <td class="num">{r.priority}</td>
      <td>{r.siteId === null ? <span class="muted">every site</span> : <a href={`/dashboard/sites/${seg(r.siteId)}`}>{r.siteId}</a>}</td>
      <td>
        <code>{ruleCondition(r)}</code>
      </td>
      <td>{ruleAction(r)}</td>
      <td class="num">{r.cooldownSeconds} s</td>
      <td>{r.enabled ? <Badge tone="ok">enabled</Badge> : <Badge tone="muted">disabled</Badge>}</td>
      <td>
        {props.editable ? null : <span class="muted small">read only</span>}
        <div class="actions" hidden={!props.editable}>
          <form method="post" action={`${base}/toggle`} class="inline">
            <CsrfField token={csrf} />
            {back}
            <input type="hidden" name="enabled" value={r.enabled ? "false" : "true"} />
            <button type="submit" class="secondary small" data-action="toggle">
              {r.enabled ? "Disable" : "Enable"}
            </button>
          </form>
          <form method="post" action={`${base}/move`} class="inline">
            <CsrfField token={csrf} />
            {back}
            <input type="hidden" name="direction" value="up" />
            <button type="submit" class="secondary small" disabled={props.first} title="Apply earlier" aria-label="Move up (apply earlier)">
              ↑
            </button>
          </form>
          <form method="post" action={`${base}/move`} class="inline">
            <CsrfField token={csrf} />
            {back}
            <input type="hidden" name="direction" value="down" />
            <button type="submit" class="secondary small" disabled={props.last} title="Apply later" aria-label="Move down (apply later)">
              ↓
            </button>
          </form>
          <a class="button secondary small" href={`${base}/edit${query({ siteId: props.siteFilter })}`}>
            Edit
          </a>
          <form method="post" action={`${base}/delete`} class="inline">
            <CsrfField token={csrf} />
            {back}
            <button type="submit" class="danger-outline small">
              Delete
            </button>
          </form>
        </div>
      </td>
    </tr>
  );
}

async function rulesPage(c: DashContext, create?: { form: FormFields; errors: FieldErrors }) {
  const siteFilter = c.req.query("siteId") || null;
  const [rules, refs] = await Promise.all([
    c.var.api.getAll<"reflexRules", Rule>(`/v1/reflex-rules${query({ siteId: siteFilter })}`, "reflexRules"),
    loadRefs(c),
  ]);
  if (!rules.ok) return failurePage(c, rules, "rules");
  const list = rules.data.reflexRules;
  const nextPriority = Math.min(MAX_PRIORITY, list.reduce((m, r) => Math.max(m, r.priority), 0) + 1);
  const body = (
    <>
      <h1>Reflex rules</h1>
      {doneFlash(c)}
      <Card
        title={siteFilter ? `Rules of site ${siteFilter}` : "All rules"}
        actions={
          <form method="get" action="/dashboard/rules" class="actions">
            <select name="siteId" aria-label="Site">
              <option value="">all sites</option>
              {refs.sites.map((s) => (
                <option value={s.siteId} selected={s.siteId === siteFilter}>
                  {s.siteId}
                </option>
              ))}
            </select>
            <button type="submit" class="secondary small">
              Filter
            </button>
          </form>
        }
      >
        {list.length === 0 ? (
          <p class="empty">
            No rules {siteFilter ? "for this site" : "yet"}. A rule watches a metric of the window (say <code>p95_latency &gt; 500</code>)
            and blocks or throttles a tag (or all traffic) while it holds. Create one below.
          </p>
        ) : (
          <TableWrap>
            <table data-rules>
              <thead>
                <tr>
                  <th class="num">Priority</th>
                  <th>Site</th>
                  <th>When</th>
                  <th>Then</th>
                  <th class="num">Cooldown</th>
                  <th>State</th>
                  <th>Actions</th>
                </tr>
              </thead>
              <tbody>
                {list.map((r, i) => (
                  <RuleRow
                    rule={r}
                    csrf={c.var.csrf}
                    first={i === 0}
                    last={i === list.length - 1}
                    siteFilter={siteFilter}
                    editable={can(c, "editor", r.siteId === null)}
                  />
                ))}
              </tbody>
            </table>
          </TableWrap>
        )}
        <p class="muted small">
          Rules apply by priority, lowest first; for each target (a tag, or all traffic) the first active rule wins and later ones wait.
          Rules with equal priority apply in id order.
        </p>
      </Card>
      {can(c, "editor") ? (
        <Card title="Create a rule" id="create">
          <RuleForm
            csrf={c.var.csrf}
            action="/dashboard/rules"
            submit="Create rule"
            rule={{ priority: nextPriority, cooldownSeconds: DEFAULT_RULE_COOLDOWN_SECONDS, enabled: true, siteId: siteFilter }}
            form={create?.form}
            errors={create?.errors}
            sites={refs.sites}
            tags={refs.tags}
          />
        </Card>
      ) : null}
    </>
  );
  return render(c, <Layout {...shell(c, "rules", "Reflex rules")}>{body}</Layout>, create ? 400 : 200);
}

/** One of the org's rules, or the API's 404 (another org's id included). */
async function findRule(c: DashContext, id: string) {
  const rules = await c.var.api.getAll<"reflexRules", Rule>("/v1/reflex-rules", "reflexRules");
  if (!rules.ok) return rules;
  const rule = rules.data.reflexRules.find((r) => r.id === id);
  return rule
    ? { ok: true as const, status: 200, data: rule }
    : { ok: false as const, status: 404, code: "NOT_FOUND", message: "No such reflex rule" };
}

async function editPage(c: DashContext, id: string, edit?: { form: FormFields; errors: FieldErrors }) {
  const [rule, refs] = await Promise.all([findRule(c, id), loadRefs(c)]);
  if (!rule.ok) return failurePage(c, rule, "rules", { href: "/dashboard/rules", label: "All rules" });
  const returnTo = edit?.form.returnTo ?? c.req.query("siteId");
  const body = (
    <>
      <p class="small">
        <a href={rulesPath(returnTo)}>← Rules</a>
      </p>
      <h1>
        Edit rule <code>{rule.data.id}</code>
      </h1>
      <Card>
        <p class="muted small">
          Created {fmtAgo(rule.data.createdAt)}, last changed {fmtAgo(rule.data.updatedAt)}.
        </p>
        <RuleForm
          csrf={c.var.csrf}
          action={`/dashboard/rules/${seg(rule.data.id)}`}
          submit="Save rule"
          rule={rule.data}
          form={edit?.form}
          errors={edit?.errors}
          sites={refs.sites}
          tags={refs.tags}
          returnTo={returnTo}
        />
      </Card>
    </>
  );
  return render(c, <Layout {...shell(c, "rules", "Edit rule")}>{body}</Layout>, edit ? 400 : 200);
}

export function registerRulePages(dash: Hono<DashEnv>) {
  dash.get("/rules", (c) => rulesPage(c));

  dash.post("/rules", async (c) => {
    const form = c.var.form;
    const created = await c.var.api.post<Rule>("/v1/reflex-rules", ruleBody(form));
    if (!created.ok) return rulesPage(c, { form, errors: fieldErrors(created, RULE_FIELDS) });
    return redirectDone(c, rulesPath(created.data.siteId), "rule.created");
  });

  dash.get("/rules/:id/edit", (c) => editPage(c, c.req.param("id")));

  dash.post("/rules/:id", async (c) => {
    const form = c.var.form;
    const updated = await c.var.api.patch<Rule>(`/v1/reflex-rules/${seg(c.req.param("id"))}`, ruleBody(form));
    if (!updated.ok) {
      if (updated.status === 404) return failurePage(c, updated, "rules");
      return editPage(c, c.req.param("id"), { form, errors: fieldErrors(updated, RULE_FIELDS) });
    }
    return redirectDone(c, rulesPath(text(form, "returnTo")), "rule.updated");
  });

  dash.post("/rules/:id/toggle", async (c) => {
    const enabled = c.var.form.enabled === "true";
    const updated = await c.var.api.patch<Rule>(`/v1/reflex-rules/${seg(c.req.param("id"))}`, { enabled });
    if (!updated.ok) return failurePage(c, updated, "rules");
    return redirectDone(c, rulesPath(text(c.var.form, "siteId")), enabled ? "rule.enabled" : "rule.disabled");
  });

  // Reordering swaps priorities with the neighbour in the list shown (or steps past an equal one).
  dash.post("/rules/:id/move", async (c) => {
    const siteFilter = text(c.var.form, "siteId");
    const up = c.var.form.direction === "up";
    const rules = await c.var.api.getAll<"reflexRules", Rule>(`/v1/reflex-rules${query({ siteId: siteFilter })}`, "reflexRules");
    if (!rules.ok) return failurePage(c, rules, "rules");
    const list = rules.data.reflexRules;
    const i = list.findIndex((r) => r.id === c.req.param("id"));
    if (i < 0) return failurePage(c, { ok: false, status: 404, code: "NOT_FOUND", message: "No such reflex rule" }, "rules");
    const me = list[i]!;
    const other = list[up ? i - 1 : i + 1];
    if (!other) return c.redirect(rulesPath(siteFilter), 303);
    const patches: Array<[string, number]> =
      me.priority !== other.priority
        ? [
            [me.id, other.priority],
            [other.id, me.priority],
          ]
        : up
          ? other.priority > 0
            ? [[me.id, other.priority - 1]]
            : [[other.id, other.priority + 1]]
          : [[me.id, Math.min(MAX_PRIORITY, other.priority + 1)]];
    for (const [id, priority] of patches) {
      const res = await c.var.api.patch(`/v1/reflex-rules/${seg(id)}`, { priority });
      if (!res.ok) return failurePage(c, res, "rules");
    }
    return redirectDone(c, rulesPath(siteFilter), "rule.moved");
  });

  dash.post("/rules/:id/delete", async (c) => {
    const deleted = await c.var.api.delete(`/v1/reflex-rules/${seg(c.req.param("id"))}`);
    if (!deleted.ok) return failurePage(c, deleted, "rules");
    return redirectDone(c, rulesPath(text(c.var.form, "siteId")), "rule.deleted");
  });
}
