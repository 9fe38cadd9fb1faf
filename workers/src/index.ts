/**
 * The WaitState control-plane Worker. This file only wires routes together;
 * each route lives in routes/ and every failure becomes the typed error body.
 */
import { Hono } from "hono";
import { ApiError, errorBody } from "./errors.js";
import { registerAdmin } from "./routes/v1_admin.js";
import { registerApiKeys } from "./routes/v1_api_keys.js";
import { registerAuditLog } from "./routes/v1_audit_log.js";
import { registerAuthToken } from "./routes/v1_auth_token.js";
import { registerManagementTokens } from "./routes/v1_management_tokens.js";
import { registerOrganizations } from "./routes/v1_organizations.js";
import { registerPolicy } from "./routes/v1_policy.js";
import { registerPulse } from "./routes/v1_pulse.js";
import { registerReflexRules } from "./routes/v1_reflex_rules.js";
import { registerSites } from "./routes/v1_sites.js";
import { registerTags } from "./routes/v1_tags.js";
import { registerTelemetry } from "./routes/v1_telemetry.js";
import { registerUsage } from "./routes/v1_usage.js";
import { registerDashboard } from "./dashboard/index.js";
import { registerWebhooks } from "./routes/v1_webhooks.js";
import { openTo } from "./middleware/access.js";
import { notFoundOrNotAllowed } from "./middleware/method-not-allowed.js";
import type { AppEnv } from "./env.js";

export type { Env } from "./env.js";
export { SiteAggregator, WebhookDispatcher } from "@waitstate/durable-objects";

const app = new Hono<AppEnv>();

app.get("/healthz", openTo("public"), (c) =>
  c.json({ ok: true, service: "waitstate-control-plane", version: c.env.WAITSTATE_VERSION ?? "dev" }),
);
// First: it marks the API calls dashboard sessions make (audit actor) before any route runs.
registerDashboard(app);
registerOrganizations(app);
registerAdmin(app);
registerManagementTokens(app);
registerApiKeys(app);
registerAuthToken(app);
registerPulse(app);
registerPolicy(app);
registerTags(app);
registerSites(app);
registerReflexRules(app);
registerUsage(app);
registerTelemetry(app);
registerAuditLog(app);
registerWebhooks(app);

app.notFound(notFoundOrNotAllowed(app));

app.onError((err, c) => {
  if (err instanceof ApiError) return c.json(errorBody(err.code, err.message), err.status);
  console.error("unhandled error", err);
  return c.json(errorBody("INTERNAL_ERROR", "The control plane failed to handle this request"), 500);
});

export default app;
