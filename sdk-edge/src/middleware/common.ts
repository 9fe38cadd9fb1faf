/**
 * What the edge wrappers (workers, hono, nextjs) share: the slice of the
 * client they call, option checking, the request's tag and weight, the 429 of
 * the Node middlewares, and reporting a finished request. No framework is
 * imported: each wrapper names the few fields it uses, so the package keeps
 * zero runtime dependencies.
 */
import {
  JSON_CONTENT_TYPE,
  denialBody,
  describe,
  resolveRequestOptions,
  type HeaderReader,
  type RequestReaders,
  type TagSource,
  type WeightSource,
} from "../../../protocol/src/middleware.js";
import { WaitStateError } from "../../../protocol/src/errors.js";
import type { GateResult } from "../core.js";

export type { GateResult, TagSource, WeightSource };

/** The part of the `WaitState` client a wrapper calls. None of these throws, and `sync()` never rejects. */
export interface EdgeClient {
  gate(tag?: string, weight?: number): GateResult;
  reportLatency(ms: number, tag?: string): void;
  reportError(tag?: string): void;
  sync(): Promise<void>;
  /** Resolves true once a policy is in force, or false after `timeoutMs` (`WaitState.ready`). */
  ready?(timeoutMs?: number): Promise<boolean>;
}

/**
 * The client, or a function that makes it from the platform's bindings (a
 * Worker's keys arrive with `env`, on the first request): called once, the
 * client kept for the isolate's life.
 */
export type ClientSource<Env> = EdgeClient | ((env: Env) => EdgeClient);

/** Options every edge wrapper takes; `Req` is what the framework hands it. */
export interface EdgeGateOptions<Req, Env = unknown> {
  /** The client whose policy decides, or a function of the platform's bindings that makes it (called once). */
  waitstate: ClientSource<Env>;
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
  /** Answers a denied request instead of the default 429. */
  onDenied?: (req: Req, result: GateResult) => Response | Promise<Response>;
  /**
   * A cold isolate has no policy yet: its first requests would be allowed
   * blindly. With a number, they wait for the first sync at most that many ms
   * (`waitstate.ready(ms)`), then go on either way; once a policy is in force
   * nothing waits. The trade-off: a cold start is slower by up to that much
   * (one round trip to the control plane when it is up), in exchange for the
   * fleet's current policy (a block, a kill switch) applying from the first
   * request.
   * @default 0 (never wait: fail open until the first sync)
   */
  waitForPolicyMs?: number;
}

/** Options checked once and turned into what the request path calls. */
export interface ResolvedOptions<Req, Env> extends RequestReaders<Req> {
  /** The client for these bindings (made on first call when `waitstate` is a function). */
  readonly clientFor: (env: Env) => EdgeClient;
  readonly onDenied: ((req: Req, result: GateResult) => Response | Promise<Response>) | undefined;
  /**
   * Resolves once the client may gate: at once when warm or when
   * `waitForPolicyMs` is 0, else after `ready(waitForPolicyMs)`. `undefined`
   * when there is nothing to wait for, so the warm path awaits nothing.
   */
  readonly warmUp: (client: EdgeClient) => Promise<unknown> | undefined;
}

/** The one error a wrapper throws, at creation: `WaitStateError` `INVALID_OPTIONS` naming the option, as the client's constructor. */
export function invalidOptions(where: string, message: string): WaitStateError {
  return new WaitStateError("INVALID_OPTIONS", `${where}: ${message}`);
}

function isClient(value: unknown): value is EdgeClient {
  if (typeof value !== "object" || value === null) return false;
  const c = value as Record<string, unknown>;
  return (
    typeof c.gate === "function" &&
    typeof c.reportLatency === "function" &&
    typeof c.reportError === "function" &&
    typeof c.sync === "function"
  );
}

/**
 * Checks a wrapper's options once, at creation, and throws a `WaitStateError`
 * (`INVALID_OPTIONS`) naming the first bad one. `where` names the wrapper.
 */
export function resolveOptions<Req, Env>(options: unknown, where: string, header: HeaderReader<Req>): ResolvedOptions<Req, Env> {
  if (typeof options !== "object" || options === null) {
    throw invalidOptions(where, "options must be an object with at least { waitstate }");
  }
  const { waitstate, onDenied, waitForPolicyMs } = options as Record<string, unknown>;
  if (!isClient(waitstate) && typeof waitstate !== "function") {
    throw invalidOptions(
      where,
      `options.waitstate must be a WaitState client (gate, reportLatency, reportError, sync) or a function (env) => WaitState, got ${describe(waitstate)}`,
    );
  }
  if (waitForPolicyMs !== undefined && !(typeof waitForPolicyMs === "number" && Number.isFinite(waitForPolicyMs) && waitForPolicyMs >= 0)) {
    throw invalidOptions(where, `options.waitForPolicyMs must be a finite number of ms >= 0, got ${describe(waitForPolicyMs)}`);
  }
  const waitMs = (waitForPolicyMs as number | undefined) ?? 0;
  let warm = waitMs === 0;
  const warmUp = (c: EdgeClient): Promise<unknown> | undefined => {
    if (warm || c.ready === undefined) return undefined;
    return c.ready(waitMs).then((ready) => {
      if (ready) warm = true;
    });
  };
  const readers = resolveRequestOptions(options as Record<string, unknown>, header, (message) => invalidOptions(where, message));
  let client: EdgeClient | undefined = isClient(waitstate) ? waitstate : undefined;
  const make = waitstate as (env: Env) => unknown;
  return {
    clientFor(env: Env): EdgeClient {
      if (client !== undefined) return client;
      const made = make(env);
      // A factory that returns something else is a programming error: say so on the first request, loudly.
      if (!isClient(made)) throw invalidOptions(where, `options.waitstate(env) must return a WaitState client, got ${describe(made)}`);
      client = made;
      return client;
    },
    ...readers,
    onDenied: onDenied as ResolvedOptions<Req, Env>["onDenied"],
    warmUp,
  };
}

/** The Node middlewares' 429: `Retry-After` and `{"error":{"code":"RATE_LIMITED","message","reason"}}`. */
export function denialResponse(reason: string, retryAfter: string): Response {
  return new Response(denialBody(reason), {
    status: 429,
    headers: { "content-type": JSON_CONTENT_TYPE, "retry-after": retryAfter },
  });
}

/**
 * Reports a finished request: its latency since `startMs` and an error if 5xx.
 * On Workers the clock stands still while code runs and moves on I/O, so this
 * measures what a user waits for: the handler's awaits (origin, storage).
 */
export function reportCompletion(client: EdgeClient, tag: string | undefined, startMs: number, status: number): void {
  client.reportLatency(performance.now() - startMs, tag);
  if (status >= 500) client.reportError(tag);
}

/** The request's headers, read the Fetch API way. */
export function requestHeader(req: Request, name: string): string | undefined {
  return req.headers.get(name) ?? undefined;
}
