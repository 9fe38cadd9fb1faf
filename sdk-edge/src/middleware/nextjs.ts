/**
 * `@waitstate/edge/nextjs`: gate Next.js on the edge runtime: in
 * `middleware.ts` (`createMiddleware`), or per route handler (`withGate`,
 * the name and shape of `@waitstate/sdk/nextjs`). Web APIs only, no
 * `node:crypto`: it runs where Next.js middleware runs.
 */
import { nextStatusOfThrown } from "../../../protocol/src/middleware.js";
import { denialResponse, invalidOptions, reportCompletion, requestHeader, resolveOptions, type EdgeGateOptions } from "./common.js";

/** What Next.js hands a middleware besides the request (a `NextFetchEvent`). */
export interface NextFetchEventLike {
  waitUntil(promise: Promise<unknown>): void;
}

export interface NextEdgeOptions<Req extends Request> extends EdgeGateOptions<Req, undefined> {
  /**
   * Keeps `sync()` alive after the response where the platform needs telling
   * (`after` from `next/server`, `waitUntil` from `@vercel/functions`). Only
   * for `withGate`: a middleware has its event's `waitUntil`.
   * @default the sync runs on its own
   */
  waitUntil?: (promise: Promise<unknown>) => void;
}

function resolveWaitUntil(options: unknown, where: string): ((promise: Promise<unknown>) => void) | undefined {
  const value = (options as { waitUntil?: unknown } | null)?.waitUntil;
  if (value !== undefined && typeof value !== "function")
    throw invalidOptions(where, `options.waitUntil must be a function, got ${typeof value}`);
  return value as ((promise: Promise<unknown>) => void) | undefined;
}

/**
 * A Next.js middleware: a denied request gets the Node middlewares' 429 and
 * goes no further; an allowed one continues (`undefined`, as
 * `NextResponse.next()`). Then `event.waitUntil(waitstate.sync())`. A
 * middleware never sees the route's response, so it reports no latency: wrap
 * route handlers with `withGate` for that.
 *
 * @example
 * // middleware.ts
 * import { WaitState } from "@waitstate/edge";
 * import { createMiddleware } from "@waitstate/edge/nextjs";
 *
 * const ws = new WaitState({ publishKey: process.env.WAITSTATE_PUBLISH_KEY!, secretKey: process.env.WAITSTATE_SECRET_KEY!, baseUrl: process.env.WAITSTATE_URL! });
 * export const middleware = createMiddleware({ waitstate: ws, tagFrom: "x-plan" });
 * export const config = { matcher: "/api/:path*" };
 */
export function createMiddleware<Req extends Request = Request>(
  options: EdgeGateOptions<Req, undefined>,
): (request: Req, event?: NextFetchEventLike) => Promise<Response | undefined> {
  const { clientFor, tagOf, weightOf, retryAfter, onDenied, warmUp } = resolveOptions<Req, undefined>(
    options,
    "@waitstate/edge/nextjs createMiddleware",
    requestHeader,
  );
  return async function waitStateMiddleware(request: Req, event?: NextFetchEventLike): Promise<Response | undefined> {
    const client = clientFor(undefined);
    const cold = warmUp(client);
    if (cold !== undefined) await cold;
    const result = client.gate(tagOf(request), weightOf(request));
    const sync = client.sync();
    event?.waitUntil(sync);
    if (result.allowed) return undefined;
    return onDenied === undefined ? denialResponse(result.reason, retryAfter) : onDenied(request, result);
  };
}

/**
 * Wraps a route handler of the edge runtime (`export const runtime = "edge"`):
 * a denied request gets the 429 and the handler never runs; for an allowed one
 * the latency up to the handler's `Response` is reported for its tag, plus an
 * error when the status is 5xx or the handler throws (rethrown; Next.js's
 * `redirect()` and `notFound()` count as their 3xx/404, as in
 * `@waitstate/sdk/nextjs`). Then `waitUntil(waitstate.sync())`.
 */
export function withGate<Req extends Request, Rest extends unknown[]>(
  options: NextEdgeOptions<Req>,
  handler: (req: Req, ...rest: Rest) => Response | Promise<Response>,
): (req: Req, ...rest: Rest) => Promise<Response> {
  const where = "@waitstate/edge/nextjs withGate";
  const { clientFor, tagOf, weightOf, retryAfter, onDenied, warmUp } = resolveOptions<Req, undefined>(options, where, requestHeader);
  const waitUntil = resolveWaitUntil(options, where);
  if (typeof handler !== "function") throw invalidOptions(where, `the second argument must be the route handler, got ${typeof handler}`);

  return async function gatedRouteHandler(req: Req, ...rest: Rest): Promise<Response> {
    const client = clientFor(undefined);
    const cold = warmUp(client);
    if (cold !== undefined) await cold;
    const tag = tagOf(req);
    const result = client.gate(tag, weightOf(req));
    if (!result.allowed) {
      const sync = client.sync();
      waitUntil?.(sync);
      return onDenied === undefined ? denialResponse(result.reason, retryAfter) : onDenied(req, result);
    }
    const startMs = performance.now();
    let status = 500;
    try {
      const response = await handler(req, ...rest);
      status = response.status;
      return response;
    } catch (error) {
      status = nextStatusOfThrown(error); // redirect() and notFound() throw: not failures
      throw error;
    } finally {
      reportCompletion(client, tag, startMs, status);
      const sync = client.sync();
      waitUntil?.(sync);
    }
  };
}
