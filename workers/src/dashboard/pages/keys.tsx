/**
 * API keys: the SDK key pairs. Create, rotate (new pair, old one revoked) and
 * revoke, the last two after a confirmation. A new secret is in the answer to
 * the POST that made it and nowhere else: the API stores it encrypted and
 * never shows it again, and this page is not cached (no-store).
 */
import type { Hono } from "hono";
import type { Child } from "hono/jsx";
import { seg } from "../api.js";
import type { DashContext, DashEnv, FormFields } from "../context.js";
import { fieldErrors, text, type FieldErrors } from "../forms.js";
import type { ApiKey, NewApiKey } from "../types.js";
import { fmtAgo, fmtTime } from "../ui/format.js";
import { Badge, Card, CsrfField, Field, Flash, Layout, TableWrap } from "../ui/layout.js";
import { ConfirmPage, doneFlash, failurePage, redirectDone, render, shell, valueOf } from "./shared.js";

function NewSecret(props: { apiKey: NewApiKey; origin: string }) {
  const key = props.apiKey;
  return (
    <section class="card" id="new-secret" data-new-secret>
      <div class="card-head">
        <h2>{key.replaces ? `Key “${key.name}” rotated` : `Key “${key.name}” created`}</h2>
        <Badge tone="warn">shown once</Badge>
      </div>
      <p>
        Copy the secret key now: it is stored encrypted and <strong>will not be shown again</strong>.
        {key.replaces ? (
          <>
            {" "}
            The old pair (<code>{key.replaces}</code>) is revoked: it stops working at once here and within 30 s everywhere.
          </>
        ) : null}
      </p>
      <dl class="kv">
        <dt>Publish key</dt>
        <dd>
          <code>{key.publishKey}</code>
        </dd>
        <dt>Secret key</dt>
        <dd>
          <code class="secret" data-secret>
            {key.secretKey}
          </code>
        </dd>
      </dl>
      <pre>
        <code>{`WAITSTATE_PUBLISH_KEY=${key.publishKey}\nWAITSTATE_SECRET_KEY=<the secret above>\nWAITSTATE_BASE_URL=${props.origin}`}</code>
      </pre>
    </section>
  );
}

/** Usable now: not revoked, and not past a rotation's grace period. */
function usable(key: ApiKey, now: number): boolean {
  return key.revokedAt === null && (key.expiresAt === null || key.expiresAt > now);
}

function KeyState(props: { apiKey: ApiKey }) {
  const key = props.apiKey;
  if (usable(key, Date.now())) {
    return key.expiresAt === null ? (
      <Badge tone="ok">active</Badge>
    ) : (
      <Badge tone="muted">{`rotated, valid until ${fmtTime(key.expiresAt)}`}</Badge>
    );
  }
  return key.rotatedToId ? <Badge tone="muted">rotated</Badge> : <Badge tone="bad">revoked</Badge>;
}

async function keysPage(c: DashContext, extra?: { created?: NewApiKey; create?: { form: FormFields; errors: FieldErrors } }) {
  const keys = await c.var.api.getAll<"apiKeys", ApiKey>("/v1/api-keys", "apiKeys");
  if (!keys.ok) return failurePage(c, keys, "keys");
  const list = keys.data.apiKeys;
  const create = extra?.create;
  const now = Date.now();
  const active = list.filter((k) => usable(k, now));
  const inactive = list.filter((k) => !usable(k, now));
  const rows = (items: ApiKey[]): Child =>
    items.map((k) => (
      <tr data-key={k.id} class={k.revokedAt === null ? undefined : "muted"}>
        <td>{k.name}</td>
        <td>
          <code>{k.publishKey}</code>
          {k.siteId !== null ? <div class="small muted">{`site ${k.siteId} only`}</div> : null}
        </td>
        <td class="nowrap small">{fmtAgo(k.createdAt)}</td>
        <td>
          <KeyState apiKey={k} />
          {k.revokedAt !== null ? <div class="small muted">{fmtTime(k.revokedAt)}</div> : null}
        </td>
        <td>
          {usable(k, now) ? (
            <div class="actions">
              {k.rotatedToId === null ? (
                <a class="button secondary small" href={`/dashboard/keys/${seg(k.id)}/rotate`} data-action="rotate">
                  Rotate…
                </a>
              ) : null}
              <a class="button danger-outline small" href={`/dashboard/keys/${seg(k.id)}/revoke`} data-action="revoke">
                Revoke…
              </a>
            </div>
          ) : null}
        </td>
      </tr>
    ));
  const table = (items: ApiKey[]) => (
    <TableWrap>
      <table data-keys>
        <thead>
          <tr>
            <th>Name</th>
            <th>Publish key</th>
            <th>Created</th>
            <th>State</th>
            <th>Actions</th>
          </tr>
        </thead>
        <tbody>{rows(items)}</tbody>
      </table>
    </TableWrap>
  );
  const body = (
    <>
      <h1>API keys</h1>
      {doneFlash(c)}
      {extra?.created ? <NewSecret apiKey={extra.created} origin={new URL(c.req.url).origin} /> : null}
      <Card title="Active key pairs">
        {active.length === 0 ? (
          <p class="empty">
            No active key pair. Create one below and give its publish and secret keys to the SDK; it signs every pulse with the secret.
          </p>
        ) : (
          table(active)
        )}
      </Card>
      <Card title="Create a key pair" id="create">
        <form method="post" action="/dashboard/keys">
          <CsrfField token={c.var.csrf} />
          {create?.errors.general ? <Flash kind="error">{create.errors.general}</Flash> : null}
          <div class="form-grid">
            <Field label="Name" name="name" error={create?.errors.fields.name} hint="Where it is used, e.g. web, worker, staging">
              <input id="f-name" name="name" value={valueOf(create?.form, "name", "")} placeholder="web" autocomplete="off" />
            </Field>
          </div>
          <div class="form-actions">
            <button type="submit">Create key pair</button>
          </div>
        </form>
      </Card>
      {inactive.length > 0 ? <Card title="Revoked and rotated">{table(inactive)}</Card> : null}
    </>
  );
  const status = create ? 400 : extra?.created ? 201 : 200;
  return render(c, <Layout {...shell(c, "keys", "API keys")}>{body}</Layout>, status);
}

async function findKey(c: DashContext, id: string) {
  const keys = await c.var.api.getAll<"apiKeys", ApiKey>("/v1/api-keys", "apiKeys");
  if (!keys.ok) return keys;
  const key = keys.data.apiKeys.find((k) => k.id === id);
  return key
    ? { ok: true as const, status: 200, data: key }
    : { ok: false as const, status: 404, code: "NOT_FOUND", message: "No such API key" };
}

export function registerKeyPages(dash: Hono<DashEnv>) {
  dash.get("/keys", (c) => keysPage(c));

  dash.post("/keys", async (c) => {
    const form = c.var.form;
    const created = await c.var.api.post<NewApiKey>("/v1/api-keys", { name: text(form, "name") ?? "default" });
    if (!created.ok) return keysPage(c, { create: { form, errors: fieldErrors(created, ["name"]) } });
    return keysPage(c, { created: created.data });
  });

  dash.get("/keys/:id/rotate", async (c) => {
    const key = await findKey(c, c.req.param("id"));
    if (!key.ok) return failurePage(c, key, "keys");
    const message = (
      <p>
        A new pair replaces <strong>{key.data.name}</strong> (<code>{key.data.publishKey}</code>). The old pair is revoked at once: SDKs
        still using it get <code>KEY_REVOKED</code> (within 5 s everywhere), so deploy the new secret right after.
      </p>
    );
    return render(
      c,
      <ConfirmPage
        c={c}
        section="keys"
        title={`Rotate key “${key.data.name}”?`}
        message={message}
        action={`/dashboard/keys/${seg(key.data.id)}/rotate`}
        fields={{}}
        submit="Rotate key"
        danger={false}
        cancel="/dashboard/keys"
      />,
    );
  });

  dash.post("/keys/:id/rotate", async (c) => {
    const rotated = await c.var.api.post<NewApiKey>(`/v1/api-keys/${seg(c.req.param("id"))}/rotate`);
    if (!rotated.ok) return failurePage(c, rotated, "keys", { href: "/dashboard/keys", label: "API keys" });
    return keysPage(c, { created: rotated.data });
  });

  dash.get("/keys/:id/revoke", async (c) => {
    const key = await findKey(c, c.req.param("id"));
    if (!key.ok) return failurePage(c, key, "keys");
    const message = (
      <p>
        <strong>{key.data.name}</strong> (<code>{key.data.publishKey}</code>) stops working at once here and within 30 s everywhere. SDKs
        using it can no longer pulse; their gates fall back to safe mode when the lease runs out.
      </p>
    );
    return render(
      c,
      <ConfirmPage
        c={c}
        section="keys"
        title={`Revoke key “${key.data.name}”?`}
        message={message}
        action={`/dashboard/keys/${seg(key.data.id)}/revoke`}
        fields={{}}
        submit="Revoke key"
        danger
        cancel="/dashboard/keys"
      />,
    );
  });

  dash.post("/keys/:id/revoke", async (c) => {
    const revoked = await c.var.api.delete(`/v1/api-keys/${seg(c.req.param("id"))}`);
    if (!revoked.ok) return failurePage(c, revoked, "keys");
    return redirectDone(c, "/dashboard/keys", "key.revoked");
  });
}
