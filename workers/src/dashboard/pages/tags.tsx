/** Tags: each tag's baseline max weight (what a throttle multiplies) and triage priority, edited in place. */
import type { Hono } from "hono";
import { DEFAULT_TAG_MAX_WEIGHT } from "@waitstate/protocol";
import { seg } from "../api.js";
import type { DashContext, DashEnv, FormFields } from "../context.js";
import { fieldErrors, num, text, type FieldErrors } from "../forms.js";
import type { Tag } from "../types.js";
import { fmtAgo } from "../ui/format.js";
import { Badge, Card, CsrfField, Field, Flash, Layout, TableWrap } from "../ui/layout.js";
import { can, doneFlash, failurePage, redirectDone, render, shell, valueOf } from "./shared.js";

const TAG_FIELDS = ["name", "maxWeight", "priority"] as const;

/** A failed edit of one row, shown in that row. */
interface RowError {
  id: string;
  form: FormFields;
  errors: FieldErrors;
}

function TagRow(props: { tag: Tag; csrf: string; error?: RowError | undefined; editable: boolean }) {
  const { tag } = props;
  const formId = `tag-${tag.id}`;
  const e = props.error?.errors;
  const form = props.error?.form;
  const message = e ? [e.general, ...Object.entries(e.fields).map(([f, m]) => `${f}: ${m}`)].filter(Boolean).join("; ") : null;
  return (
    <tr data-tag={tag.name} class={message ? "hot" : undefined}>
      <td>
        <code>{tag.name}</code> {tag.autoCreated ? <Badge tone="muted">seen in pulses</Badge> : null}
        {message ? (
          <p class="field-error" data-field-error="row">
            {message}
          </p>
        ) : null}
      </td>
      <td>
        <input
          class="narrow"
          form={formId}
          name="maxWeight"
          inputmode="decimal"
          aria-label={`Baseline max weight of ${tag.name}`}
          value={valueOf(form, "maxWeight", tag.maxWeight)}
          readonly={!props.editable}
        />
      </td>
      <td>
        <input
          class="narrow"
          form={formId}
          name="priority"
          inputmode="numeric"
          aria-label={`Priority of ${tag.name}`}
          value={valueOf(form, "priority", tag.priority)}
          readonly={!props.editable}
        />
      </td>
      <td class="nowrap small muted">{fmtAgo(tag.createdAt)}</td>
      <td>
        {props.editable ? null : <span class="muted small">read only</span>}
        <div class="actions" hidden={!props.editable}>
          <form method="post" action={`/dashboard/tags/${seg(tag.id)}`} id={formId} class="inline">
            <CsrfField token={props.csrf} />
            <button type="submit" class="secondary small">
              Save
            </button>
          </form>
          <form method="post" action={`/dashboard/tags/${seg(tag.id)}/delete`} class="inline">
            <CsrfField token={props.csrf} />
            <button type="submit" class="danger-outline small">
              Delete
            </button>
          </form>
        </div>
      </td>
    </tr>
  );
}

async function tagsPage(c: DashContext, failed?: { create?: { form: FormFields; errors: FieldErrors }; row?: RowError }) {
  const tags = await c.var.api.getAll<"tags", Tag>("/v1/tags", "tags");
  if (!tags.ok) return failurePage(c, tags, "tags");
  const list = tags.data.tags;
  const create = failed?.create;
  const e = create?.errors.fields ?? {};
  const body = (
    <>
      <h1>Tags</h1>
      {doneFlash(c)}
      <Card title="Tags">
        {list.length === 0 ? (
          <p class="empty">
            No tags yet. Tags are created automatically the first time a pulse carries them (<code>ws.gate("free", 1)</code> counts under{" "}
            <code>free</code>), or configure one below before it appears.
          </p>
        ) : (
          <TableWrap>
            <table data-tags>
              <thead>
                <tr>
                  <th>Tag</th>
                  <th>Baseline max weight</th>
                  <th>Priority</th>
                  <th>Created</th>
                  <th>Actions</th>
                </tr>
              </thead>
              <tbody>
                {list.map((t) => (
                  <TagRow
                    tag={t}
                    csrf={c.var.csrf}
                    error={failed?.row?.id === t.id ? failed.row : undefined}
                    editable={can(c, "editor", true)}
                  />
                ))}
              </tbody>
            </table>
          </TableWrap>
        )}
        <p class="muted small">
          The baseline max weight is what a <em>throttle</em> multiplies (default {DEFAULT_TAG_MAX_WEIGHT}). Priority: higher is more
          important; a rule on all traffic sheds the lowest priority first, then one more tier per window while it keeps holding.
        </p>
      </Card>
      {can(c, "editor", true) ? (
        <Card title="Configure a tag" id="create">
          <form method="post" action="/dashboard/tags">
            <CsrfField token={c.var.csrf} />
            {create?.errors.general ? <Flash kind="error">{create.errors.general}</Flash> : null}
            <div class="form-grid">
              <Field label="Name" name="name" error={e.name}>
                <input id="f-name" name="name" value={valueOf(create?.form, "name", "")} placeholder="free" autocomplete="off" />
              </Field>
              <Field label="Baseline max weight" name="maxWeight" error={e.maxWeight} hint={`Empty: ${DEFAULT_TAG_MAX_WEIGHT}`}>
                <input id="f-maxWeight" name="maxWeight" inputmode="decimal" value={valueOf(create?.form, "maxWeight", "")} />
              </Field>
              <Field label="Priority" name="priority" error={e.priority} hint="Empty: 0">
                <input id="f-priority" name="priority" inputmode="numeric" value={valueOf(create?.form, "priority", "")} />
              </Field>
            </div>
            <div class="form-actions">
              <button type="submit">Create tag</button>
            </div>
          </form>
        </Card>
      ) : null}
    </>
  );
  return render(c, <Layout {...shell(c, "tags", "Tags")}>{body}</Layout>, failed ? 400 : 200);
}

export function registerTagPages(dash: Hono<DashEnv>) {
  dash.get("/tags", (c) => tagsPage(c));

  dash.post("/tags", async (c) => {
    const form = c.var.form;
    // Empty numbers are left out: the API's defaults apply.
    const created = await c.var.api.post<Tag>("/v1/tags", {
      name: text(form, "name") ?? "",
      maxWeight: num(form, "maxWeight"),
      priority: num(form, "priority"),
    });
    if (!created.ok) return tagsPage(c, { create: { form, errors: fieldErrors(created, TAG_FIELDS) } });
    return redirectDone(c, "/dashboard/tags", "tag.created");
  });

  dash.post("/tags/:id", async (c) => {
    const form = c.var.form;
    const id = c.req.param("id");
    const updated = await c.var.api.patch<Tag>(`/v1/tags/${seg(id)}`, {
      maxWeight: num(form, "maxWeight") ?? "",
      priority: num(form, "priority") ?? "",
    });
    if (!updated.ok) {
      if (updated.status === 404) return failurePage(c, updated, "tags");
      return tagsPage(c, { row: { id, form, errors: fieldErrors(updated, TAG_FIELDS) } });
    }
    return redirectDone(c, "/dashboard/tags", "tag.updated");
  });

  dash.post("/tags/:id/delete", async (c) => {
    const deleted = await c.var.api.delete(`/v1/tags/${seg(c.req.param("id"))}`);
    if (!deleted.ok) return failurePage(c, deleted, "tags");
    return redirectDone(c, "/dashboard/tags", "tag.deleted");
  });
}
