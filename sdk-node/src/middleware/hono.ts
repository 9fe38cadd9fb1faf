/**
 * `@waitstate/sdk/hono`: gate each request in a Hono middleware. Uses only
 * Web APIs, so it runs wherever Hono does.
 */
import { denialResponse, reportCompletion, resolveOptions, type GateOptions, type GateResult } from "./common.js";

/** The context fields the middleware reads (a Hono `Context`). */
export interface HonoLikeContext {
  readonly req: { header(name: string): string | undefined };
  readonly res: { readonly status: number };
}

export type HonoNext = () => Promise<void>;

/**
 * In Hono the middleware's argument is the context `c`, so `tagFrom` and
 * `weightFrom` functions receive `c` too (`c.req.header(...)`, `c.get(...)`).
 */
export interface HonoGateOptions<C> extends GateOptions<C> {
  /** Answers a denied request instead of the default 429. */
  onDenied?: (c: C, result: GateResult) => Response | Promise<Response>;
}

function readHeader(c: HonoLikeContext, name: string): string | undefined {
  return c.req.header(name);
}

/**
 * Creates a Hono middleware: a denied request gets a 429 with `Retry-After`
 * and a JSON error body, and later handlers never run; for an allowed one the
 * latency up to the response is reported for its tag, plus an error when the
 * status is 5xx or a later handler throws (the error is rethrown).
 *
 * @example
 * import { Hono } from "hono";
 * import { WaitState } from "@waitstate/sdk";
 * import { createMiddleware } from "@waitstate/sdk/hono";
 *
 * const ws = new WaitState({ publishKey, secretKey, baseUrl });
 * const app = new Hono();
 * app.use("/api/*", createMiddleware({ waitstate: ws, tagFrom: (c) => c.req.header("x-plan") }));
 */
export function createMiddleware<C extends HonoLikeContext = HonoLikeContext>(
  options: HonoGateOptions<C>,
): (c: C, next: HonoNext) => Promise<Response | void> {
  const { client, tagOf, weightOf, retryAfter } = resolveOptions<C>(options, "@waitstate/sdk/hono createMiddleware", readHeader);
  const onDenied = options.onDenied;

  return async function waitStateGate(c: C, next: HonoNext): Promise<Response | void> {
    const tag = tagOf(c);
    const result = client.gate(tag, weightOf(c));
    if (!result.allowed) return onDenied === undefined ? denialResponse(result.reason, retryAfter) : onDenied(c, result);
    const startMs = performance.now();
    let status = 500;
    try {
      await next();
      status = c.res.status;
    } finally {
      // Hono turns a handler's throw into c.res via onError; a throw that still reaches here counts as a 500.
      reportCompletion(client, tag, startMs, status);
    }
  };
}
