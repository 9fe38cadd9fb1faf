/**
 * The WaitState control-plane Worker. Issue 4 adds auth, pulses, policies and
 * the management API; this entry already answers health checks and turns every
 * unknown route or unexpected failure into the typed error body.
 */
import { Hono } from "hono";
import { errorBody } from "./errors.js";

export interface Env {
  /** Configuration database (schema: db/schema.ts). */
  DB: D1Database;
  /** Set by wrangler.toml; shows which build answered. */
  WAITSTATE_VERSION?: string;
}

const app = new Hono<{ Bindings: Env }>();

app.get("/healthz", (c) => c.json({ ok: true, service: "waitstate-control-plane", version: c.env.WAITSTATE_VERSION ?? "dev" }));

app.notFound((c) => c.json(errorBody("NOT_FOUND", `No route for ${c.req.method} ${new URL(c.req.url).pathname}`), 404));

app.onError((err, c) => {
  console.error("unhandled error", err);
  return c.json(errorBody("INTERNAL_ERROR", "The control plane failed to handle this request"), 500);
});

export default app;
