/**
 * The audit log and what webhooks are made of, shared by the Worker (management
 * changes), the SiteAggregator (automatic actions) and the WebhookDispatcher:
 * entry shape, kinds, the D1 insert, event-pattern matching, the webhook body
 * and its signature. Pure apart from Web Crypto and the D1 statements it builds.
 */

/** Every kind the audit log records. Management changes first, then automatic actions (actor `system`). */
export const AUDIT_KINDS = [
  "org.created",
  "org.plan_changed",
  "org.suspended",
  "org.resumed",
  "key.created",
  "key.rotated",
  "key.revoked",
  "token.created",
  "token.revoked",
  "tag.created",
  "tag.updated",
  "tag.deleted",
  "rule.created",
  "rule.updated",
  "rule.deleted",
  "site.created",
  "site.updated",
  "site.deleted",
  "kill.on",
  "kill.off",
  "webhook.created",
  "webhook.updated",
  "webhook.deleted",
  "session.login",
  "session.logout",
  "rule.fired",
  "rule.cleared",
  "cap_exceeded",
  "policy.folded",
] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

export const ACTOR_TYPES = ["token", "session", "system", "admin"] as const;
export type ActorType = (typeof ACTOR_TYPES)[number];

/** Who did it: a management token, a dashboard session, the control plane itself, or the ADMIN_TOKEN holder. */
export interface AuditActor {
  type: ActorType;
  id: string | null;
  name: string | null;
  /** The role of the acting management token or session (`admin`, `editor`, `viewer`); null for `system` and `admin`. */
  role?: string | null;
}

export const SYSTEM_ACTOR: AuditActor = Object.freeze({ type: "system", id: null, name: null, role: null }) as AuditActor;

/** One audit entry as the API lists it (`GET /v1/audit-log`). */
export interface AuditEntry {
  id: string;
  /** Epoch ms. */
  at: number;
  siteId: string | null;
  actor: AuditActor;
  kind: AuditKind;
  target: string | null;
  before: unknown;
  after: unknown;
  details: unknown;
}

/** The JSON body a webhook receives: the audit entry plus the organization. */
export interface WebhookPayload {
  id: string;
  kind: AuditKind;
  at: number;
  orgId: string;
  siteId: string | null;
  actor: AuditActor;
  target: string | null;
  before: unknown;
  after: unknown;
  details: unknown;
}

/** A new audit id: `aud_` + 16 random bytes, base64url. */
export function auditId(): string {
  return randomId("aud_", 16);
}

export function randomId(prefix: string, bytes = 12): string {
  const raw = crypto.getRandomValues(new Uint8Array(bytes));
  let s = "";
  for (const b of raw) s += String.fromCharCode(b);
  return prefix + btoa(s).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

const json = (value: unknown): string | null => (value === null || value === undefined ? null : JSON.stringify(value));

/** The D1 insert for one entry; idempotent by id, so an entry written twice (a retried hand-off) lands once. */
export function auditInsert(db: D1Database, orgId: string, entry: AuditEntry): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO audit_log (id, org_id, at, site_id, actor_type, actor_id, actor_name, actor_role, kind, target, before, after, details)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
    )
    .bind(
      entry.id,
      orgId,
      entry.at,
      entry.siteId,
      entry.actor.type,
      entry.actor.id,
      entry.actor.name,
      entry.actor.role ?? null,
      entry.kind,
      entry.target,
      json(entry.before),
      json(entry.after),
      json(entry.details),
    );
}

// ------------------------------------------------------------ event patterns

/**
 * Whether a webhook subscribed to `patterns` wants `kind`: `*` matches
 * everything, `rule.*` every kind starting with `rule.`, anything else exactly.
 */
export function kindMatches(patterns: readonly string[], kind: string): boolean {
  return patterns.some((p) => p === "*" || p === kind || (p.endsWith(".*") && kind.startsWith(p.slice(0, -1))));
}

/** Whether an audit-log `kind` filter (exact, or a prefix ending in `.*`) selects at least one known kind. */
export function patternKnown(pattern: string): boolean {
  return AUDIT_KINDS.some((kind) => kindMatches([pattern], kind));
}

// ------------------------------------------------------------ signature

const encoder = new TextEncoder();

function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/**
 * The `x-waitstate-signature` header value: `v1=` + hex HMAC-SHA256, keyed
 * with the webhook's secret (its UTF-8 text, `whsec_…` included), over
 * `timestamp + "." + body`.
 */
export async function signWebhook(secret: string, timestamp: string, body: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(`${timestamp}.${body}`)));
  return `v1=${hex(mac)}`;
}

/** The body a webhook receives for `entry` (the same bytes on every retry). */
export function webhookBody(orgId: string, entry: AuditEntry): string {
  const payload: WebhookPayload = {
    id: entry.id,
    kind: entry.kind,
    at: entry.at,
    orgId,
    siteId: entry.siteId,
    actor: entry.actor,
    target: entry.target,
    before: entry.before ?? null,
    after: entry.after ?? null,
    details: entry.details ?? null,
  };
  return JSON.stringify(payload);
}

// ------------------------------------------------------------ secrets at rest

function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const normal = text.replaceAll("-", "+").replaceAll("_", "/");
  const bin = atob(normal + "=".repeat((4 - (normal.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * Decrypts a secret sealed by the Worker (AES-256-GCM with `ENCRYPTION_KEY`,
 * base64url ciphertext and nonce), as workers/src/lib/crypto.ts seals it.
 */
export async function openSecret(encryptionKey: string, sealed: { ciphertext: string; iv: string }): Promise<string> {
  const raw = fromBase64(encryptionKey);
  if (raw.length !== 32) throw new Error("ENCRYPTION_KEY must be 32 bytes, base64-encoded");
  const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["decrypt"]);
  const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: fromBase64(sealed.iv) }, key, fromBase64(sealed.ciphertext));
  return new TextDecoder().decode(plain);
}
