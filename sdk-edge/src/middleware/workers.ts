/**
 * `@waitstate/edge/workers`: gate a Cloudflare Workers `fetch` handler.
 */
import { denialResponse, invalidOptions, reportCompletion, requestHeader, resolveOptions, type EdgeGateOptions } from "./common.js";

/** What Workers hand a `fetch` handler besides the request (an `ExecutionContext`). */
export interface WaitUntilContext {
  waitUntil(promise: Promise<unknown>): void;
}

/** A Workers `fetch` handler. */
export type FetchHandler<Env, Ctx extends WaitUntilContext = WaitUntilContext> = (
  request: Request,
  env: Env,
  ctx: Ctx,
) => Response | Promise<Response>;

export type WithWaitStateOptions<Env> = EdgeGateOptions<Request, Env>;

/**
 * Wraps a Workers `fetch` handler. Each request is gated by its tag and weight
 * (headers by default, like the Node middlewares): a denied one gets the Node
 * middlewares' 429 (`Retry-After`, `{"error":{"code":"RATE_LIMITED",…}}`) and
 * the handler never runs; an allowed one's latency is reported for its tag,
 * plus an error when the status is 5xx or the handler throws (rethrown). Every
 * request ends with `ctx.waitUntil(waitstate.sync())`, which sends what is due
 * (token, pulse, policy read) after the response and nothing otherwise.
 *
 * @example
 * import { WaitState } from "@waitstate/edge";
 * import { withWaitState } from "@waitstate/edge/workers";
 *
 * export default {
 *   fetch: withWaitState((request) => fetch(request), {
 *     waitstate: (env: Env) => new WaitState({ publishKey: env.WAITSTATE_PUBLISH_KEY, secretKey: env.WAITSTATE_SECRET_KEY, baseUrl: env.WAITSTATE_URL }),
 *   }),
 * };
 */
export function withWaitState<Env, Ctx extends WaitUntilContext = WaitUntilContext>(
  handler: FetchHandler<Env, Ctx>,
  options: WithWaitStateOptions<Env>,
): FetchHandler<Env, Ctx> {
  const where = "@waitstate/edge/workers withWaitState";
  if (typeof handler !== "function") throw invalidOptions(where, `the first argument must be the fetch handler, got ${typeof handler}`);
  const { clientFor, tagOf, weightOf, retryAfter, onDenied, warmUp } = resolveOptions<Request, Env>(options, where, requestHeader);

  return async function gatedFetch(request: Request, env: Env, ctx: Ctx): Promise<Response> {
    const client = clientFor(env);
    const cold = warmUp(client);
    if (cold !== undefined) await cold;
    const tag = tagOf(request);
    const result = client.gate(tag, weightOf(request));
    if (!result.allowed) {
      // Denied calls are counted too, and a fleet that only denies still needs its policy to move on.
      ctx.waitUntil(client.sync());
      return onDenied === undefined ? denialResponse(result.reason, retryAfter) : onDenied(request, result);
    }
    const startMs = performance.now();
    let status = 500;
    try {
      const response = await handler(request, env, ctx);
      status = response.status;
      return response;
    } finally {
      reportCompletion(client, tag, startMs, status);
      // After the report, so a due pulse carries this request's latency.
      ctx.waitUntil(client.sync());
    }
  };
}
