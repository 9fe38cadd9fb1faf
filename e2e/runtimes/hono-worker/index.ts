// A Hono app on Cloudflare Workers gated by @waitstate/edge/hono: what a Hono user writes.
import { Hono } from "hono";
import { WaitState } from "@waitstate/edge";
import { createMiddleware } from "@waitstate/edge/hono";

interface Env {
  WAITSTATE_URL: string;
  WAITSTATE_PUBLISH_KEY: string;
  WAITSTATE_SECRET_KEY: string;
  WAITSTATE_SITE_ID: string;
}

const app = new Hono<{ Bindings: Env }>();
app.use(
  "/api/*",
  createMiddleware({
    waitstate: (env: Env) =>
      new WaitState({
        publishKey: env.WAITSTATE_PUBLISH_KEY,
        secretKey: env.WAITSTATE_SECRET_KEY,
        baseUrl: env.WAITSTATE_URL,
        siteId: env.WAITSTATE_SITE_ID,
      }),
    retryAfter: 1,
  }),
);
app.get("/api/*", (c) => c.json({ allowed: true, reason: "allowed" }));
app.get("/ready", (c) => c.text("ready")); // outside the gated routes: wrangler dev's readiness probes are no gate calls

export default app;
