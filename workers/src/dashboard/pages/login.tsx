/** Log in with a management token; the session is a sealed cookie (session.ts). */
import { CsrfField, Field, Flash, Layout } from "../ui/layout.js";

/** Why the login page is shown again: fixed messages chosen by code. */
export const LOGIN_REASONS: Readonly<Record<string, { kind: "info" | "warn"; text: string }>> = {
  logged_out: { kind: "info", text: "You are logged out." },
  expired: { kind: "warn", text: "Your session expired. Log in again." },
  revoked: { kind: "warn", text: "Your session ended: its management token is no longer valid." },
};

export interface LoginPageProps {
  csrf: string;
  nonce: string;
  next: string | null;
  reason?: string | undefined;
  error?: string | undefined;
}

export function LoginPage(props: LoginPageProps) {
  const reason = props.reason ? LOGIN_REASONS[props.reason] : undefined;
  return (
    <Layout title="Log in" nonce={props.nonce}>
      <div class="login">
        <h1>Log in</h1>
        {reason && !props.error ? <Flash kind={reason.kind}>{reason.text}</Flash> : null}
        <section class="card">
          <form method="post" action="/dashboard/login" autocomplete="off">
            <CsrfField token={props.csrf} />
            {props.next ? <input type="hidden" name="next" value={props.next} /> : null}
            <Field
              label="Management token"
              name="token"
              error={props.error}
              hint={
                <>
                  The <code>ws_mgmt_…</code> token <code>POST /v1/organizations</code> printed once. The dashboard keeps it only in an
                  encrypted, HttpOnly cookie for 12 hours.
                </>
              }
            >
              <input
                id="f-token"
                name="token"
                type="password"
                required
                autofocus
                spellcheck={false}
                autocomplete="off"
                placeholder="ws_mgmt_…"
              />
            </Field>
            <div class="form-actions">
              <button type="submit">Log in</button>
            </div>
          </form>
        </section>
        <p class="muted small">
          No token yet? Create an organization with the <code>ADMIN_TOKEN</code>:{" "}
          <code>{`curl -X POST $URL/v1/organizations -H "authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' -d '{"name":"My company"}'`}</code>
        </p>
      </div>
    </Layout>
  );
}

/** Where to go after logging in: only a dashboard path of this origin, never another site. */
export function safeNext(next: string | null | undefined): string | null {
  if (!next) return null;
  return /^\/dashboard(\/[A-Za-z0-9._~\-/%]*)?(\?[A-Za-z0-9._~\-=&%+*]*)?$/.test(next) && !next.includes("//") ? next : null;
}
