/**
 * WaitState at the edge: a Cloudflare Worker gated by the fleet's live policy.
 * Tag and weight come from the `x-waitstate-tag` / `x-waitstate-weight`
 * headers; a denied request gets a 429 (`Retry-After`, the Node middlewares'
 * JSON body); an allowed one goes to `ORIGIN_URL`, or gets a 200 JSON answer
 * when there is no origin. Latency and 5xx are reported per tag, and
 * `ctx.waitUntil(ws.sync())` keeps the policy and the pulses going.
 */
import { WaitState } from "@waitstate/edge";
import { withWaitState } from "@waitstate/edge/workers";

export interface Env {
  WAITSTATE_URL: string;
  WAITSTATE_PUBLISH_KEY: string;
  /** A secret: `wrangler secret put WAITSTATE_SECRET_KEY` (locally `.dev.vars`). */
  WAITSTATE_SECRET_KEY: string;
  WAITSTATE_SITE_ID?: string;
  ORIGIN_URL?: string;
}

async function handler(request: Request, env: Env): Promise<Response> {
  if (!env.ORIGIN_URL) return Response.json({ allowed: true, reason: "allowed" });
  const url = new URL(request.url);
  return fetch(new Request(new URL(url.pathname + url.search, env.ORIGIN_URL), request));
}

export default {
  fetch: withWaitState(handler, {
    waitstate: (env: Env) =>
      new WaitState({
        publishKey: env.WAITSTATE_PUBLISH_KEY,
        secretKey: env.WAITSTATE_SECRET_KEY,
        baseUrl: env.WAITSTATE_URL,
        siteId: env.WAITSTATE_SITE_ID,
      }),
    weightFrom: "x-waitstate-weight",
    retryAfter: 1,
    waitForPolicyMs: 2000, // a cold isolate's first requests wait for the policy at most this long
  }),
} satisfies ExportedHandler<Env>;
