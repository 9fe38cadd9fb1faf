import type { AuditActor, SiteAggregator, WebhookDispatcher } from "@waitstate/durable-objects";
import type { Role } from "./middleware/access.js";

/** The Worker's bindings (wrangler.toml, .dev.vars / `wrangler secret put`). */
export interface Env {
  /** Configuration database (schema: db/schema.ts). */
  DB: D1Database;
  /** Current policy per site, for `GET /v1/policy/:orgId`. */
  POLICIES: KVNamespace;
  /** One SiteAggregator per `orgId:siteId`. */
  SITE_AGGREGATOR: DurableObjectNamespace<SiteAggregator>;
  /** One WebhookDispatcher per org: webhook deliveries and their retries. */
  WEBHOOK_DISPATCHER: DurableObjectNamespace<WebhookDispatcher>;
  /** Authorises `POST /v1/organizations` (bootstrap). A secret. */
  ADMIN_TOKEN?: string;
  /** 32 bytes, base64: the AES-GCM key for secret keys at rest. A secret. */
  ENCRYPTION_KEY?: string;
  /** Plan of a new organization when the request names none. */
  DEFAULT_PLAN?: string;
  /** Set by wrangler.toml; shows which build answered. */
  WAITSTATE_VERSION?: string;
  /** Webhook retry base delay, ms (default 60000); tests set it low. */
  WEBHOOK_RETRY_BASE_MS?: string;
  /** How long one webhook attempt waits for an answer, ms (default 10000). */
  WEBHOOK_TIMEOUT_MS?: string;
  /**
   * `true` lets webhooks target loopback, private, link-local and other
   * non-public addresses (a self-hosted network whose receivers live there).
   * Unset, they are refused at creation, update and delivery.
   */
  WEBHOOKS_ALLOW_PRIVATE_TARGETS?: string;
}

/** What the management-auth middleware puts on the context. */
export interface ManagementVariables {
  orgId: string;
  /** The management token that authenticated the request (set by managementAuth with `orgId`); `siteIds` null is every site. */
  managementToken?: { id: string; name: string; role: Role; siteIds: string[] | null };
  /**
   * Who is acting, for the audit log. Optional: when nothing set it, the audit
   * log names the request's management token (a dashboard session may set
   * `{type: "session", …}` before calling the routes).
   */
  actor?: AuditActor;
}

export type AppEnv = { Bindings: Env; Variables: ManagementVariables };
