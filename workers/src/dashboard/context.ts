import type { Context } from "hono";
import type { Env } from "../env.js";
import type { DashboardApi } from "./api.js";
import type { Session, SessionKeys } from "./session.js";
import type { Access, Organization } from "./types.js";

/** What the dashboard's middleware puts on the context of a logged-in request. */
export interface DashboardVariables {
  keys: SessionKeys;
  session: Session;
  org: Organization;
  /** The session token's role and sites: pages offer only what it may do, and the middleware refuses the rest. */
  access: Access;
  /** This session's CSRF token: a hidden field of every form. */
  csrf: string;
  api: DashboardApi;
  /** The Content-Security-Policy nonce of this response's inline script, if any. */
  nonce: string;
  /** The form fields of a POST, read once by the CSRF check. */
  form: FormFields;
}

export type DashEnv = { Bindings: Env; Variables: DashboardVariables };
export type DashContext = Context<DashEnv>;

/** A submitted form: the last value of each field (forms here never repeat a name). */
export type FormFields = Record<string, string>;
