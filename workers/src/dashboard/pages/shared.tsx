/** Helpers every dashboard page uses: rendering, the shell's props, flashes after a change, API failures. */
import type { Child } from "hono/jsx";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ApiResult } from "../api.js";
import type { DashContext } from "../context.js";
import { roleCovers, type Role } from "../../middleware/access.js";
import { Card, CsrfField, Field, Flash, Layout, MessagePage, type LayoutProps, type NavSection } from "../ui/layout.js";

/** Renders a page as a full HTML document. */
export async function render(c: DashContext, node: Child, status: ContentfulStatusCode = 200): Promise<Response> {
  return c.html(`<!DOCTYPE html>${String(await node)}`, status);
}

/** The shell's props for a logged-in page. */
export function shell(c: DashContext, section: NavSection, title: string, refreshSeconds?: number): LayoutProps {
  const props: LayoutProps = { title, org: c.var.org, access: c.var.access, csrf: c.var.csrf, section, nonce: c.var.nonce };
  if (refreshSeconds !== undefined) props.refreshSeconds = refreshSeconds;
  return props;
}

/**
 * Whether the session may do what needs `role` (and, with `orgWide`, what
 * concerns every site, which a site-scoped token may not): pages show a form
 * or a button only when it would be accepted.
 */
export function can(c: DashContext, role: Role, orgWide = false): boolean {
  const access = c.var.access;
  return roleCovers(access.role, role) && (!orgWide || access.siteIds === null);
}

/**
 * What a change reports after its redirect (`?done=rule.created`): fixed
 * messages chosen by code, so nothing from the URL is echoed into the page.
 */
const DONE: Readonly<Record<string, string>> = {
  "site.created": "Site created. It uses its plan's timing until you change it.",
  "site.updated": "Timing saved. The site's next policy uses it.",
  "site.deleted": "Site deleted: its telemetry, events and cached policy are gone. A new pulse creates it again.",
  "kill.on": "Kill switch ON: every gate() of this site denies with kill_signal from its next sync.",
  "kill.off": "Kill switch off: the site's policy is back to its rules.",
  "rule.created": "Rule created. The sites it applies to re-evaluate at once.",
  "rule.updated": "Rule saved.",
  "rule.enabled": "Rule enabled.",
  "rule.disabled": "Rule disabled: it no longer shapes any policy.",
  "rule.moved": "Priority changed.",
  "rule.deleted": "Rule deleted.",
  "tag.created": "Tag created.",
  "tag.updated": "Tag saved.",
  "tag.deleted": "Tag deleted: it falls back to the defaults (a pulse that still carries it re-creates it).",
  "key.revoked": "Key revoked: it stops working at once here and within 30 s everywhere.",
  "webhook.updated": "Webhook saved.",
  "webhook.deleted": "Webhook deleted.",
};

export function doneFlash(c: DashContext): Child {
  const message = DONE[c.req.query("done") ?? ""];
  return message ? <Flash kind="ok">{message}</Flash> : null;
}

/** A redirect after a successful change (POST → 303 → GET), with its flash code. */
export function redirectDone(c: DashContext, path: string, done: keyof typeof DONE | string): Response {
  const sep = path.includes("?") ? "&" : "?";
  return c.redirect(`${path}${sep}done=${encodeURIComponent(done)}`, 303);
}

/**
 * A failed API read as a page: 404 (also another organization's ids: the API
 * cannot tell them apart, so neither can the dashboard), or the API's message.
 */
export function failurePage(
  c: DashContext,
  failure: Extract<ApiResult<unknown>, { ok: false }>,
  section: NavSection = "none",
  back?: { href: string; label: string },
): Promise<Response> {
  const status = (failure.status >= 400 && failure.status <= 599 ? failure.status : 500) as ContentfulStatusCode;
  const heading = failure.status === 404 ? "Not found" : "That did not work";
  const message =
    failure.status === 404 ? `${failure.message}. It may have been deleted, or it belongs to another organization.` : failure.message;
  const props = { ...shell(c, section, heading), heading, message };
  return render(c, <MessagePage {...props} {...(back ? { back } : {})} />, status);
}

/** The latest value of an input or its stored value: what a re-rendered form shows. */
export function valueOf(form: Record<string, string> | undefined, name: string, stored: string | number | null | undefined): string {
  if (form && name in form) return form[name] ?? "";
  return stored === null || stored === undefined ? "" : String(stored);
}

/** A confirmation page: what will happen, and one form that does it. */
export function ConfirmPage(props: {
  c: DashContext;
  section: NavSection;
  title: string;
  message: Child;
  action: string;
  fields: Record<string, string>;
  submit: string;
  danger: boolean;
  cancel: string;
  typeToConfirm?: string | undefined;
  error?: string | undefined;
}) {
  const { c } = props;
  return (
    <Layout {...shell(c, props.section, props.title)}>
      <h1>{props.title}</h1>
      <Card>
        {props.message}
        <form method="post" action={props.action}>
          <CsrfField token={c.var.csrf} />
          {Object.entries(props.fields).map(([name, value]) => (
            <input type="hidden" name={name} value={value} />
          ))}
          {props.typeToConfirm !== undefined ? (
            <Field label={`Type “${props.typeToConfirm}” to confirm`} name="confirm" error={props.error}>
              <input id="f-confirm" name="confirm" required autocomplete="off" spellcheck={false} />
            </Field>
          ) : null}
          <div class="form-actions">
            <button type="submit" class={props.danger ? "danger" : undefined}>
              {props.submit}
            </button>
            <a href={props.cancel}>Cancel</a>
          </div>
        </form>
      </Card>
    </Layout>
  );
}
