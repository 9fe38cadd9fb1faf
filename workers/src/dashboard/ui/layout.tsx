/**
 * The page shell and the small components every page uses. Plain server-rendered
 * HTML: no external assets, no build step; hono/jsx escapes every value.
 */
import type { Child, PropsWithChildren } from "hono/jsx";
import type { Access, Organization } from "../types.js";
import { STYLES } from "./styles.js";

export type NavSection = "sites" | "rules" | "tags" | "keys" | "usage" | "audit" | "webhooks" | "none";

/** Sections, with whether only an admin may open them (credentials and webhook URLs). */
const NAV: ReadonlyArray<[NavSection, string, string, boolean]> = [
  ["sites", "Sites", "/dashboard/sites", false],
  ["rules", "Reflex rules", "/dashboard/rules", false],
  ["tags", "Tags", "/dashboard/tags", false],
  ["keys", "API keys", "/dashboard/keys", true],
  ["usage", "Usage", "/dashboard/usage", false],
  ["audit", "Audit log", "/dashboard/audit", false],
  ["webhooks", "Webhooks", "/dashboard/webhooks", true],
];

// Reloads a live page every few seconds, but never while someone is typing in it or it is hidden;
// the one-time "done" notice of a change is not shown again.
const AUTO_REFRESH_SCRIPT = (seconds: number) => `(function(){var busy=false;
document.addEventListener("input",function(){busy=true});
setInterval(function(){var a=document.activeElement;
if(busy||document.hidden||(a&&/^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName)))return;
var u=new URL(location.href);u.searchParams.delete("done");if(u.href===location.href)location.reload();else location.replace(u.href)},${Math.round(seconds * 1000)})})();`;

/**
 * A live page: its `[data-live]` sections are swapped for the HTML the
 * server streams (`event: html`, one JSON object of section → HTML per site
 * status), as the aggregator pushes changes; nothing polls. `#live-state`
 * says whether the stream is open. EventSource reconnects by itself; a stream
 * the server refuses (an ended session, a deleted site) closes it, and then the
 * page is reloaded once after 10 s, which shows the login or the error.
 */
const LIVE_SCRIPT = (url: string) => `(function(){var s=document.getElementById("live-state");
function state(t,k){if(s){s.textContent=t;s.setAttribute("data-state",k)}}
var es=new EventSource(${JSON.stringify(url)});
es.addEventListener("open",function(){state("● live","live")});
es.addEventListener("html",function(e){var parts=JSON.parse(e.data);
for(var name in parts){var el=document.querySelector('[data-live="'+name+'"]');if(el&&el.innerHTML!==parts[name])el.innerHTML=parts[name]}
state("● live","live")});
es.addEventListener("error",function(){if(es.readyState===2){state("stream closed","closed");setTimeout(function(){location.reload()},10000)}else state("reconnecting…","reconnecting")});
})();`;

export interface LayoutProps {
  title: string;
  /** Absent on the login page. */
  org?: Organization;
  /** The session token's role and sites; the navigation leaves out what it cannot open. */
  access?: Access;
  csrf?: string;
  section?: NavSection;
  nonce?: string;
  /** Reload the page this often (live pages without an event stream). */
  refreshSeconds?: number;
  /** The page's live stream (see LIVE_SCRIPT). */
  liveUrl?: string;
}

/** The HTML document: header with the org and navigation, then the page. */
export function Layout(props: PropsWithChildren<LayoutProps>) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="same-origin" />
        <title>{`${props.title} · WaitState`}</title>
        <style dangerouslySetInnerHTML={{ __html: STYLES }} />
      </head>
      <body>
        <header class="top">
          <a class="brand" href="/dashboard/sites">
            <span class="logo" aria-hidden="true">
              ◐
            </span>{" "}
            WaitState
          </a>
          {props.org ? (
            <div class="who">
              <span class="org">{props.org.name}</span>
              <span class={`badge plan-${props.org.plan}`}>{props.org.plan}</span>
              {props.org.suspended ? <span class="badge bad">suspended</span> : null}
              {props.access ? (
                <span class="badge role" title={props.access.siteIds === null ? "every site" : `sites: ${props.access.siteIds.join(", ")}`}>
                  {props.access.siteIds === null ? props.access.role : `${props.access.role} · ${props.access.siteIds.join(", ")}`}
                </span>
              ) : null}
              <form method="post" action="/dashboard/logout" class="inline">
                <CsrfField token={props.csrf ?? ""} />
                <button type="submit" class="link">
                  Log out
                </button>
              </form>
            </div>
          ) : null}
        </header>
        {props.org ? (
          <nav class="nav" aria-label="Sections">
            {NAV.filter(([, , , adminOnly]) => !adminOnly || props.access?.role === "admin").map(([key, label, href]) => (
              <a href={href} class={props.section === key ? "active" : undefined} aria-current={props.section === key ? "page" : undefined}>
                {label}
              </a>
            ))}
          </nav>
        ) : null}
        <main>{props.children}</main>
        {props.liveUrl && props.nonce ? (
          <script nonce={props.nonce} dangerouslySetInnerHTML={{ __html: LIVE_SCRIPT(props.liveUrl) }} />
        ) : null}
        {props.refreshSeconds && props.nonce ? (
          <script nonce={props.nonce} dangerouslySetInnerHTML={{ __html: AUTO_REFRESH_SCRIPT(props.refreshSeconds) }} />
        ) : null}
      </body>
    </html>
  );
}

export function CsrfField(props: { token: string }) {
  return <input type="hidden" name="_csrf" value={props.token} />;
}

/** A notice at the top of a page: `ok` after a change, `error` for what failed. */
export function Flash(props: PropsWithChildren<{ kind: "ok" | "error" | "warn" | "info" }>) {
  return (
    <div class={`flash ${props.kind}`} role={props.kind === "error" ? "alert" : "status"}>
      {props.children}
    </div>
  );
}

/** A labelled form control with its validation message right under it. */
export function Field(props: PropsWithChildren<{ label: string; error?: string | undefined; hint?: Child; name: string; wide?: boolean }>) {
  return (
    <div class={`field${props.error ? " invalid" : ""}${props.wide ? " wide" : ""}`}>
      <label for={`f-${props.name}`}>{props.label}</label>
      {props.children}
      {props.error ? (
        <p class="field-error" id={`err-${props.name}`} data-field-error={props.name}>
          {props.error}
        </p>
      ) : props.hint ? (
        <p class="hint">{props.hint}</p>
      ) : null}
    </div>
  );
}

export function Badge(props: PropsWithChildren<{ tone: "ok" | "bad" | "warn" | "muted" | "info" }>) {
  return <span class={`badge ${props.tone}`}>{props.children}</span>;
}

export function Stat(props: { label: string; value: string; hint?: string | undefined; tone?: "bad" | "warn" | undefined }) {
  return (
    <div class={`stat${props.tone ? ` ${props.tone}` : ""}`}>
      <div class="stat-label">{props.label}</div>
      <div class="stat-value">{props.value}</div>
      {props.hint ? <div class="stat-hint">{props.hint}</div> : null}
    </div>
  );
}

/** Wide tables scroll inside their card at phone width instead of widening the page. */
export function TableWrap(props: PropsWithChildren) {
  return <div class="table-wrap">{props.children}</div>;
}

export function Card(props: PropsWithChildren<{ title?: Child; id?: string; actions?: Child }>) {
  return (
    <section class="card" id={props.id}>
      {props.title || props.actions ? (
        <div class="card-head">
          {props.title ? <h2>{props.title}</h2> : <span />}
          {props.actions ? <div class="card-actions">{props.actions}</div> : null}
        </div>
      ) : null}
      {props.children}
    </section>
  );
}

/** A page that explains a refusal or a missing thing, in the shell when there is a session. */
export function MessagePage(props: LayoutProps & { heading: string; message: string; back?: { href: string; label: string } }) {
  return (
    <Layout {...props}>
      <h1>{props.heading}</h1>
      <Card>
        <p>{props.message}</p>
        {props.back ? (
          <p>
            <a href={props.back.href}>{props.back.label}</a>
          </p>
        ) : null}
      </Card>
    </Layout>
  );
}
