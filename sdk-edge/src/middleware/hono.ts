/**
 * `@waitstate/edge/hono`: gate each request in a Hono middleware on an edge
 * runtime (Workers, Deno, Bun, Vercel Edge).
 */
import { denialResponse, reportCompletion, resolveOptions, type EdgeGateOptions } from "./common.js";

/** The context fields the middleware reads (a Hono `Context`). */
export interface HonoEdgeContext {
  readonly req: { header(name: string): string | undefined };
  readonly res: { readonly status: number };
  /** The platform's bindings (a Worker's `env`). */
  readonly env?: unknown;
  /** Hono's getter throws where the platform has no execution context (Deno, Bun, Node). */
  readonly executionCtx: { waitUntil(promise: Promise<unknown>): void };
}

export type HonoNext = () => Promise<void>;

/**
 * In Hono the middleware's argument is the context `c`: `tagFrom`, `weightFrom`
 * and `onDenied` receive `c`, and a `waitstate` function receives `c.env` (the
 * app's `Bindings`, `Env`).
 */
export type HonoEdgeOptions<C extends HonoEdgeContext, Env = unknown> = EdgeGateOptions<C, Env>;

function readHeader(c: HonoEdgeContext, name: string): string | undefined {
  return c.req.header(name);
}

/** `c.executionCtx.waitUntil(promise)` on Workers; elsewhere the promise runs on its own (it never rejects). */
function waitUntil(c: HonoEdgeContext, promise: Promise<unknown>): void {
  try {
    c.executionCtx.waitUntil(promise);
  } catch {
    // No execution context (Deno, Bun, Node): the runtime keeps running, so the sync finishes anyway.
  }
}

/**
 * Creates a Hono middleware: a denied request gets the Node middlewares' 429
 * and later handlers never run; for an allowed one the latency up to the
 * response is reported for its tag, plus an error when the status is 5xx or a
 * later handler throws (rethrown). Then `waitUntil(waitstate.sync())`.
 *
 * @example
 * import { Hono } from "hono";
 * import { WaitState } from "@waitstate/edge";
 * import { createMiddleware } from "@waitstate/edge/hono";
 *
 * const app = new Hono<{ Bindings: Env }>();
 * app.use("*", createMiddleware({ waitstate: (env: Env) => new WaitState({ publishKey: env.WAITSTATE_PUBLISH_KEY, secretKey: env.WAITSTATE_SECRET_KEY, baseUrl: env.WAITSTATE_URL }) }));
 */
export function createMiddleware<C extends HonoEdgeContext = HonoEdgeContext, Env = unknown>(
  options: HonoEdgeOptions<C, Env>,
): (c: C, next: HonoNext) => Promise<Response | void> {
  const { clientFor, tagOf, weightOf, retryAfter, onDenied, warmUp } = resolveOptions<C, Env>(
    options,
    "@waitstate/edge/hono createMiddleware",
    readHeader,
  );

  return async function waitStateGate(c: C, next: HonoNext): Promise<Response | void> {
    const client = clientFor(c.env as Env);
    const cold = warmUp(client);
    if (cold !== undefined) await cold;
    const tag = tagOf(c);
    const result = client.gate(tag, weightOf(c));
    if (!result.allowed) {
      waitUntil(c, client.sync());
      return onDenied === undefined ? denialResponse(result.reason, retryAfter) : onDenied(c, result);
    }
    const startMs = performance.now();
    let status = 500;
    try {
      await next();
      status = c.res.status;
    } finally {
      // Hono turns a handler's throw into c.res via onError; a throw that still reaches here counts as a 500.
      reportCompletion(client, tag, startMs, status);
      waitUntil(c, client.sync());
    }
  };
}
