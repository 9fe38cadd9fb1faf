/**
 * Writing the audit log from the Worker: who is acting (the management token
 * of the request, a dashboard session, or the ADMIN_TOKEN holder) and one entry
 * per management change, written to D1 and handed to the org's webhook
 * dispatcher. Automatic actions are written by the SiteAggregator (actor
 * `system`) through the same recordAudit.
 */
import type { Context } from "hono";
import { recordAudit, auditId, type AuditActor, type AuditEntry, type AuditKind } from "@waitstate/durable-objects";
import type { AppEnv, Env } from "../env.js";

export type { AuditActor, AuditEntry, AuditKind } from "@waitstate/durable-objects";

export const ADMIN_ACTOR: AuditActor = Object.freeze({ type: "admin", id: null, name: "ADMIN_TOKEN", role: null }) as AuditActor;

/** What a route says about a change; the id, time and actor are filled in. */
export interface AuditChange {
  kind: AuditKind;
  siteId?: string | null;
  target?: string | null;
  before?: unknown;
  after?: unknown;
  details?: unknown;
}

/**
 * The actor of a management request: whatever the context says (a dashboard
 * session sets it), else the management token that authenticated the request
 * (managementAuth put it on the context).
 */
export function actorOf(c: Context<AppEnv>): AuditActor {
  const set = c.get("actor");
  const token = c.get("managementToken");
  // A session acts with its token's role as the token has it now (a role is never changed, but read, not remembered).
  if (set !== undefined) return { ...set, role: set.role ?? token?.role ?? null };
  return { type: "token", id: token?.id ?? null, name: token?.name ?? null, role: token?.role ?? null };
}

/** A full entry for `change`, made now. */
export function auditEntry(actor: AuditActor, change: AuditChange, at = Date.now()): AuditEntry {
  return {
    id: auditId(),
    at,
    siteId: change.siteId ?? null,
    actor,
    kind: change.kind,
    target: change.target ?? null,
    before: change.before ?? null,
    after: change.after ?? null,
    details: change.details ?? null,
  };
}

/**
 * Records entries for `orgId` as `actor`: D1, then the webhook dispatcher. The
 * change itself is already committed when this runs, so a failure here is
 * logged rather than answered (the request did succeed).
 */
export async function auditAs(env: Env, orgId: string, actor: AuditActor, changes: AuditChange[]): Promise<void> {
  if (changes.length === 0) return;
  const at = Date.now();
  try {
    await recordAudit(
      env,
      orgId,
      changes.map((change) => auditEntry(actor, change, at)),
    );
  } catch (error) {
    console.error(`audit: recording ${changes.map((c) => c.kind).join(", ")} for ${orgId} failed`, error);
  }
}

/** Records a management change by the request's actor in the request's org. */
export async function audit(c: Context<AppEnv>, ...changes: AuditChange[]): Promise<void> {
  await auditAs(c.env, c.var.orgId, actorOf(c), changes);
}
