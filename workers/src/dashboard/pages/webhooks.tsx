/**
 * Webhooks: signed deliveries of audit events. Create (the signing secret is
 * shown once), edit url and events, enable/disable, delete, and each
 * webhook's recent deliveries.
 */
import type { Hono } from "hono";
import { query, seg } from "../api.js";
import type { DashContext, DashEnv, FormFields } from "../context.js";
import { checkbox, fieldErrors, text, type FieldErrors } from "../forms.js";
import type { Delivery, NewWebhook, Webhook } from "../types.js";
import { fmtAgo, fmtTime } from "../ui/format.js";
import { Badge, Card, CsrfField, Field, Flash, Layout, TableWrap } from "../ui/layout.js";
import { routeMissing } from "./audit.js";
import { doneFlash, failurePage, redirectDone, render, shell, valueOf } from "./shared.js";

const WEBHOOK_FIELDS = ["url", "events", "enabled"] as const;

/** "rule.fired, kill.*" → ["rule.fired", "kill.*"]; empty → every event. */
export function eventList(input: string | null): string[] {
  const events = (input ?? "").split(/[\s,]+/).filter(Boolean);
  return events.length > 0 ? events : ["*"];
}

function WebhookForm(props: {
  csrf: string;
  action: string;
  submit: string;
  webhook?: Webhook;
  form?: FormFields | undefined;
  errors?: FieldErrors | undefined;
}) {
  const e = props.errors?.fields ?? {};
  const enabled = props.form ? checkbox(props.form, "enabled") : (props.webhook?.enabled ?? true);
  return (
    <form method="post" action={props.action} data-form="webhook">
      <CsrfField token={props.csrf} />
      {props.errors?.general ? <Flash kind="error">{props.errors.general}</Flash> : null}
      <div class="form-grid">
        <Field label="URL" name="url" error={e.url} hint="https:// endpoint that receives a signed POST per event" wide>
          <input
            id="f-url"
            name="url"
            type="url"
            value={valueOf(props.form, "url", props.webhook?.url)}
            placeholder="https://example.com/hooks/waitstate"
          />
        </Field>
        <Field label="Events" name="events" error={e.events} hint="Comma-separated: rule.fired, kill.*, or * for all">
          <input
            id="f-events"
            name="events"
            value={valueOf(props.form, "events", props.webhook?.events.join(", ") ?? "*")}
            autocomplete="off"
          />
        </Field>
        <Field label="Enabled" name="enabled" error={e.enabled}>
          <label class="check">
            <input id="f-enabled" type="checkbox" name="enabled" checked={enabled} /> deliver events
          </label>
        </Field>
      </div>
      <div class="form-actions">
        <button type="submit">{props.submit}</button>
      </div>
    </form>
  );
}

function body(form: FormFields) {
  return { url: text(form, "url") ?? "", events: eventList(text(form, "events")), enabled: checkbox(form, "enabled") };
}

const notAvailable = (c: DashContext) =>
  render(
    c,
    <Layout {...shell(c, "webhooks", "Webhooks")}>
      <h1>Webhooks</h1>
      <Flash kind="warn">This control plane has no webhooks API (GET /v1/webhooks) yet.</Flash>
    </Layout>,
    501,
  );

async function webhooksPage(c: DashContext, extra?: { created?: NewWebhook; create?: { form: FormFields; errors: FieldErrors } }) {
  const hooks = await c.var.api.getAll<"webhooks", Webhook>("/v1/webhooks", "webhooks");
  if (routeMissing(hooks)) return notAvailable(c);
  if (!hooks.ok) return failurePage(c, hooks, "webhooks");
  const list = hooks.data.webhooks;
  const created = extra?.created;
  const page = (
    <>
      <h1>Webhooks</h1>
      {doneFlash(c)}
      {created ? (
        <section class="card" data-new-secret>
          <div class="card-head">
            <h2>Webhook created</h2>
            <Badge tone="warn">shown once</Badge>
          </div>
          <p>
            Copy the signing secret now: it <strong>will not be shown again</strong>. Each delivery carries{" "}
            <code>x-waitstate-signature: v1=&lt;hex HMAC-SHA256(secret, timestamp + "." + body)&gt;</code> and{" "}
            <code>x-waitstate-timestamp</code>.
          </p>
          <code class="secret" data-secret>
            {created.secret}
          </code>
        </section>
      ) : null}
      <Card title="Endpoints">
        {list.length === 0 ? (
          <p class="empty">
            No webhooks yet. Add an endpoint below to receive rule fires, kill switch changes and every other audit event as signed POSTs,
            retried with backoff for at least an hour.
          </p>
        ) : (
          <TableWrap>
            <table data-webhooks>
              <thead>
                <tr>
                  <th>URL</th>
                  <th>Events</th>
                  <th>State</th>
                  <th>Created</th>
                  <th>Actions</th>
                </tr>
              </thead>
              <tbody>
                {list.map((h) => (
                  <tr data-webhook={h.id} class={h.enabled ? undefined : "muted"}>
                    <td class="small">
                      <a href={`/dashboard/webhooks/${seg(h.id)}`}>{h.url}</a>
                    </td>
                    <td class="small">
                      <code>{h.events.join(", ")}</code>
                    </td>
                    <td>{h.enabled ? <Badge tone="ok">enabled</Badge> : <Badge tone="muted">disabled</Badge>}</td>
                    <td class="nowrap small">{fmtAgo(h.createdAt)}</td>
                    <td>
                      <div class="actions">
                        <form method="post" action={`/dashboard/webhooks/${seg(h.id)}/toggle`} class="inline">
                          <CsrfField token={c.var.csrf} />
                          <input type="hidden" name="enabled" value={h.enabled ? "false" : "true"} />
                          <button type="submit" class="secondary small">
                            {h.enabled ? "Disable" : "Enable"}
                          </button>
                        </form>
                        <a class="button secondary small" href={`/dashboard/webhooks/${seg(h.id)}`}>
                          Deliveries
                        </a>
                        <form method="post" action={`/dashboard/webhooks/${seg(h.id)}/delete`} class="inline">
                          <CsrfField token={c.var.csrf} />
                          <button type="submit" class="danger-outline small">
                            Delete
                          </button>
                        </form>
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
        )}
      </Card>
      <Card title="Add an endpoint" id="create">
        <WebhookForm
          csrf={c.var.csrf}
          action="/dashboard/webhooks"
          submit="Add webhook"
          form={extra?.create?.form}
          errors={extra?.create?.errors}
        />
      </Card>
    </>
  );
  return render(c, <Layout {...shell(c, "webhooks", "Webhooks")}>{page}</Layout>, extra?.create ? 400 : created ? 201 : 200);
}

async function webhookPage(c: DashContext, id: string, edit?: { form: FormFields; errors: FieldErrors }) {
  const [hooks, deliveries] = await Promise.all([
    c.var.api.getAll<"webhooks", Webhook>("/v1/webhooks", "webhooks"),
    c.var.api.get<{ deliveries: Delivery[]; nextCursor: string | null }>(
      `/v1/webhooks/${seg(id)}/deliveries${query({ limit: 50, cursor: c.req.query("cursor") })}`,
    ),
  ]);
  if (routeMissing(hooks)) return notAvailable(c);
  if (!hooks.ok) return failurePage(c, hooks, "webhooks");
  const hook = hooks.data.webhooks.find((h) => h.id === id);
  if (!hook)
    return failurePage(c, { ok: false, status: 404, code: "NOT_FOUND", message: "No such webhook" }, "webhooks", {
      href: "/dashboard/webhooks",
      label: "Webhooks",
    });
  const list = deliveries.ok ? deliveries.data.deliveries : [];
  const page = (
    <>
      <p class="small">
        <a href="/dashboard/webhooks">← Webhooks</a>
      </p>
      <h1>Webhook</h1>
      {doneFlash(c)}
      <Card title="Settings">
        <WebhookForm
          csrf={c.var.csrf}
          action={`/dashboard/webhooks/${seg(id)}`}
          submit="Save webhook"
          webhook={hook}
          form={edit?.form}
          errors={edit?.errors}
        />
      </Card>
      <Card title="Recent deliveries">
        {!deliveries.ok ? (
          <Flash kind="error">{deliveries.message}</Flash>
        ) : list.length === 0 ? (
          <p class="empty">
            Nothing delivered yet: deliveries appear when a matching event happens (change a rule, flip the kill switch…).
          </p>
        ) : (
          <TableWrap>
            <table data-deliveries>
              <thead>
                <tr>
                  <th>Created</th>
                  <th>Event</th>
                  <th>Status</th>
                  <th class="num">Attempts</th>
                  <th>Last answer</th>
                  <th>Next attempt</th>
                </tr>
              </thead>
              <tbody>
                {list.map((d) => (
                  <tr>
                    <td class="nowrap small">{fmtTime(d.createdAt)}</td>
                    <td>
                      <code>{d.kind}</code>
                    </td>
                    <td>
                      <Badge tone={d.status === "delivered" ? "ok" : d.status === "failed" ? "bad" : "warn"}>{d.status}</Badge>
                    </td>
                    <td class="num">{d.attempts}</td>
                    <td class="small">{d.lastStatusCode !== null ? `HTTP ${d.lastStatusCode}` : (d.lastError ?? "–")}</td>
                    <td class="small">{d.status === "pending" ? fmtAgo(d.nextAttemptAt).replace(" ago", "") : "–"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
        )}
        {deliveries.ok && deliveries.data.nextCursor ? (
          <div class="pager">
            <a class="button secondary small" href={`/dashboard/webhooks/${seg(id)}${query({ cursor: deliveries.data.nextCursor })}`}>
              Older →
            </a>
          </div>
        ) : null}
      </Card>
    </>
  );
  return render(c, <Layout {...shell(c, "webhooks", "Webhook")}>{page}</Layout>, edit ? 400 : 200);
}

export function registerWebhookPages(dash: Hono<DashEnv>) {
  dash.get("/webhooks", (c) => webhooksPage(c));

  dash.post("/webhooks", async (c) => {
    const form = c.var.form;
    const created = await c.var.api.post<NewWebhook>("/v1/webhooks", body(form));
    if (routeMissing(created)) return notAvailable(c);
    if (!created.ok) return webhooksPage(c, { create: { form, errors: fieldErrors(created, WEBHOOK_FIELDS) } });
    return webhooksPage(c, { created: created.data });
  });

  dash.get("/webhooks/:id", (c) => webhookPage(c, c.req.param("id")));

  dash.post("/webhooks/:id", async (c) => {
    const form = c.var.form;
    const id = c.req.param("id");
    const updated = await c.var.api.patch<Webhook>(`/v1/webhooks/${seg(id)}`, body(form));
    if (!updated.ok) {
      if (updated.status === 404) return failurePage(c, updated, "webhooks");
      return webhookPage(c, id, { form, errors: fieldErrors(updated, WEBHOOK_FIELDS) });
    }
    return redirectDone(c, `/dashboard/webhooks/${seg(id)}`, "webhook.updated");
  });

  dash.post("/webhooks/:id/toggle", async (c) => {
    const updated = await c.var.api.patch<Webhook>(`/v1/webhooks/${seg(c.req.param("id"))}`, { enabled: c.var.form.enabled === "true" });
    if (!updated.ok) return failurePage(c, updated, "webhooks");
    return redirectDone(c, "/dashboard/webhooks", "webhook.updated");
  });

  dash.post("/webhooks/:id/delete", async (c) => {
    const deleted = await c.var.api.delete(`/v1/webhooks/${seg(c.req.param("id"))}`);
    if (!deleted.ok) return failurePage(c, deleted, "webhooks");
    return redirectDone(c, "/dashboard/webhooks", "webhook.deleted");
  });
}
