/**
 * What the four framework middlewares share: the slice of the client they
 * call, option checking, reading a request's tag and weight, the 429 body, and
 * reporting a finished request. No framework is imported anywhere under
 * `middleware/`: each file names the few request and response fields it uses,
 * so the SDK keeps zero runtime dependencies.
 */
import { WaitStateError } from "../errors.js";
import type { GateReason } from "../../../protocol/src/constants.js";
import type { GateResult } from "../../../protocol/src/gate.js";
import {
  JSON_CONTENT_TYPE,
  denialBody,
  resolveRequestOptions,
  type HeaderReader,
  type RequestReaders,
  type TagSource,
  type WeightSource,
} from "../../../protocol/src/middleware.js";

// The options' reading and the 429 are the edge middlewares' too (@waitstate/edge), so they live in the protocol.
export {
  DEFAULT_RETRY_AFTER_SECONDS,
  DEFAULT_TAG_HEADER,
  JSON_CONTENT_TYPE,
  denialBody,
  parseWeight,
} from "../../../protocol/src/middleware.js";
export type { HeaderReader, TagSource, WeightSource };

export type { GateReason, GateResult };

/** The part of the `WaitState` client a middleware calls. Each method never throws. */
export interface GateClient {
  gate(tag?: string, weight?: number): GateResult;
  reportLatency(ms: number, tag?: string): void;
  reportError(tag?: string): void;
}

/** Options every middleware takes. `Req` is what the framework hands a middleware. */
export interface GateOptions<Req> {
  /** The client whose policy decides. */
  waitstate: GateClient;
  /**
   * Where the request's tag comes from. A missing or empty value, or a
   * function that throws, means no tag (`__default__`).
   * @default "x-waitstate-tag"
   */
  tagFrom?: TagSource<Req>;
  /**
   * Where the request's weight comes from. Anything that is not a finite
   * number, or a function that throws, means weight 1.
   * @default undefined (every request weighs 1)
   */
  weightFrom?: WeightSource<Req>;
  /**
   * `Retry-After` on a 429, seconds (rounded up to a whole second).
   * @default 60
   */
  retryAfter?: number;
}

/** A request whose headers are a `node:http` header object (express, fastify). */
export interface NodeHeadersRequest {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** The {@link HeaderReader} of a `node:http` header object: a repeated header gives its first value. */
export function readNodeHeader(req: NodeHeadersRequest, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === "string" ? value : value?.[0];
}

/** Options checked and turned into the functions the hot path calls. */
export interface ResolvedGate<Req> extends RequestReaders<Req> {
  readonly client: GateClient;
}

/** The error every bad option throws: `WaitStateError` with code `INVALID_OPTIONS`. */
export function invalidOptions(where: string, message: string): WaitStateError {
  return new WaitStateError("INVALID_OPTIONS", `${where}: ${message}`);
}

function isGateClient(value: unknown): value is GateClient {
  if (typeof value !== "object" || value === null) return false;
  const client = value as Record<string, unknown>;
  return typeof client.gate === "function" && typeof client.reportLatency === "function" && typeof client.reportError === "function";
}

/**
 * Checks a middleware's options once, at creation, and throws a
 * `WaitStateError` (`INVALID_OPTIONS`) naming the first bad option.
 * `where` names the factory in messages, e.g. `"@waitstate/sdk/express createMiddleware"`.
 */
export function resolveOptions<Req>(options: unknown, where: string, readHeader: HeaderReader<Req>): ResolvedGate<Req> {
  if (typeof options !== "object" || options === null) {
    throw invalidOptions(where, "options must be an object with at least { waitstate }");
  }
  const { waitstate } = options as Record<string, unknown>;
  if (!isGateClient(waitstate)) {
    throw invalidOptions(where, "options.waitstate must be a WaitState client (an object with gate, reportLatency and reportError)");
  }
  return {
    client: waitstate,
    ...resolveRequestOptions(options as Record<string, unknown>, readHeader, (message) => invalidOptions(where, message)),
  };
}

/** A Web `Response` for a denied request (hono, Next.js). */
export function denialResponse(reason: string, retryAfter: string): Response {
  return new Response(denialBody(reason), {
    status: 429,
    headers: { "content-type": JSON_CONTENT_TYPE, "retry-after": retryAfter },
  });
}

/** Reports a finished request: its latency since `startMs` (performance.now()), and an error if 5xx. */
export function reportCompletion(client: GateClient, tag: string | undefined, startMs: number, status: number): void {
  client.reportLatency(performance.now() - startMs, tag);
  if (status >= 500) client.reportError(tag);
}

/** Whether `value` is a promise-like (an async `onDenied`). */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === "object" && value !== null && typeof (value as { then?: unknown }).then === "function";
}
