import type { SiteAggregator } from "@waitstate/durable-objects";

/** The Worker's bindings (wrangler.toml, .dev.vars / `wrangler secret put`). */
export interface Env {
  /** Configuration database (schema: db/schema.ts). */
  DB: D1Database;
  /** Current policy per site, for `GET /v1/policy/:orgId`. */
  POLICIES: KVNamespace;
  /** One SiteAggregator per `orgId:siteId`. */
  SITE_AGGREGATOR: DurableObjectNamespace<SiteAggregator>;
  /** Authorises `POST /v1/organizations` (bootstrap). A secret. */
  ADMIN_TOKEN?: string;
  /** 32 bytes, base64: the AES-GCM key for secret keys at rest. A secret. */
  ENCRYPTION_KEY?: string;
  /** Plan of a new organization when the request names none. */
  DEFAULT_PLAN?: string;
  /** Set by wrangler.toml; shows which build answered. */
  WAITSTATE_VERSION?: string;
}

/** What the management-auth middleware puts on the context. */
export interface ManagementVariables {
  orgId: string;
}

export type AppEnv = { Bindings: Env; Variables: ManagementVariables };
