/**
 * `@waitstate/sdk/express`: gate each request before its handler runs.
 * Works with Express 4 and 5 and plain `node:http` handlers that take `next`.
 */
import {
  JSON_CONTENT_TYPE,
  denialBody,
  isThenable,
  reportCompletion,
  readNodeHeader,
  resolveOptions,
  type GateOptions,
  type GateResult,
} from "./common.js";

/** The request fields the middleware reads (an Express `Request` or a `node:http` `IncomingMessage`). */
export interface ExpressLikeRequest {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** The response fields the middleware uses (an Express `Response` or a `node:http` `ServerResponse`). */
export interface ExpressLikeResponse {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(body: string): unknown;
  on(event: "finish", listener: () => void): unknown;
}

export type ExpressNextFunction = (error?: unknown) => void;

export interface ExpressGateOptions<Req, Res> extends GateOptions<Req> {
  /**
   * Answers a denied request instead of the default 429; it must end the
   * response. A rejected promise goes to `next(error)`.
   */
  onDenied?: (req: Req, res: Res, result: GateResult) => void | Promise<void>;
}

/**
 * Creates an Express middleware: a denied request gets a 429 with
 * `Retry-After` and a JSON error body, and its handler never runs; an allowed
 * one proceeds (with its `GateResult` in `res.locals.waitstate` when the
 * response has Express's `locals`), and when its response finishes the latency is reported for
 * its tag, plus an error when the status is 5xx (handler errors become 5xx
 * through Express's error handling). A request whose client disconnects
 * before the response finishes is not reported.
 *
 * @example
 * import express from "express";
 * import { WaitState } from "@waitstate/sdk";
 * import { createMiddleware } from "@waitstate/sdk/express";
 *
 * const ws = new WaitState({ publishKey, secretKey, baseUrl });
 * const app = express();
 * app.use(createMiddleware({ waitstate: ws, tagFrom: (req) => req.headers["x-plan"] as string }));
 */
export function createMiddleware<
  Req extends ExpressLikeRequest = ExpressLikeRequest,
  Res extends ExpressLikeResponse = ExpressLikeResponse,
>(options: ExpressGateOptions<Req, Res>): (req: Req, res: Res, next: ExpressNextFunction) => void {
  const { client, tagOf, weightOf, retryAfter } = resolveOptions<Req>(options, "@waitstate/sdk/express createMiddleware", readNodeHeader);
  const onDenied = options.onDenied;

  return function waitStateGate(req: Req, res: Res, next: ExpressNextFunction): void {
    const tag = tagOf(req);
    const result = client.gate(tag, weightOf(req));
    if (!result.allowed) {
      if (onDenied === undefined) {
        res.statusCode = 429;
        res.setHeader("retry-after", retryAfter);
        res.setHeader("content-type", JSON_CONTENT_TYPE);
        res.end(denialBody(result.reason));
        return;
      }
      const pending: unknown = onDenied(req, res, result);
      if (isThenable(pending)) pending.then(undefined, next);
      return;
    }
    // Express keeps per-request values in `res.locals`: the handler can read why it was allowed (e.g. `lease_expired`).
    const locals = (res as { locals?: Record<string, unknown> }).locals;
    if (locals !== undefined) locals.waitstate = result;
    const startMs = performance.now();
    // `on`, not `once`: a response finishes once, and `once` would allocate a wrapper per request.
    res.on("finish", () => reportCompletion(client, tag, startMs, res.statusCode));
    next();
  };
}
