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

export type { GateReason, GateResult };

/** The part of the `WaitState` client a middleware calls. Each method never throws. */
export interface GateClient {
  gate(tag?: string, weight?: number): GateResult;
  reportLatency(ms: number, tag?: string): void;
  reportError(tag?: string): void;
}

/** A header name (case-insensitive), or a function of the request. */
export type TagSource<Req> = string | ((req: Req) => string | undefined);

/** A header name (case-insensitive), or a function of the request. */
export type WeightSource<Req> = string | ((req: Req) => number | undefined);

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

export const DEFAULT_TAG_HEADER = "x-waitstate-tag";
export const DEFAULT_RETRY_AFTER_SECONDS = 60;

/** Reads one header; `name` is already lower case. */
export type HeaderReader<Req> = (req: Req, name: string) => string | undefined;

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
export interface ResolvedGate<Req> {
  readonly client: GateClient;
  /** `undefined` means no tag: the client counts it under `__default__`. */
  readonly tagOf: (req: Req) => string | undefined;
  /** `undefined` means the client's default weight, 1. */
  readonly weightOf: (req: Req) => number | undefined;
  /** The `Retry-After` header value. */
  readonly retryAfter: string;
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

function noWeight(): undefined {
  return undefined;
}

/** A header's weight: a finite number, else `undefined` (weight 1). `""` is not 0. */
export function parseWeight(value: string | undefined): number | undefined {
  if (value === undefined || value === "") return undefined;
  const weight = Number(value);
  return Number.isFinite(weight) ? weight : undefined;
}

function tagReader<Req>(source: TagSource<Req>, readHeader: HeaderReader<Req>): (req: Req) => string | undefined {
  if (typeof source === "string") {
    const name = source.toLowerCase();
    return (req) => readHeader(req, name) || undefined;
  }
  return (req) => {
    try {
      const tag = source(req);
      return typeof tag === "string" && tag.length > 0 ? tag : undefined;
    } catch {
      return undefined; // a broken tag function must not fail the request
    }
  };
}

function weightReader<Req>(source: WeightSource<Req>, readHeader: HeaderReader<Req>): (req: Req) => number | undefined {
  if (typeof source === "string") {
    const name = source.toLowerCase();
    return (req) => parseWeight(readHeader(req, name));
  }
  return (req) => {
    try {
      const weight = source(req);
      return typeof weight === "number" && Number.isFinite(weight) ? weight : undefined;
    } catch {
      return undefined; // a broken weight function must not fail the request
    }
  };
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
  const { waitstate, tagFrom, weightFrom, retryAfter, onDenied } = options as Record<string, unknown>;
  if (!isGateClient(waitstate)) {
    throw invalidOptions(where, "options.waitstate must be a WaitState client (an object with gate, reportLatency and reportError)");
  }
  if (tagFrom !== undefined && !isNonEmptyString(tagFrom) && typeof tagFrom !== "function") {
    throw invalidOptions(where, `options.tagFrom must be a header name or a function (req) => string, got ${describe(tagFrom)}`);
  }
  if (weightFrom !== undefined && !isNonEmptyString(weightFrom) && typeof weightFrom !== "function") {
    throw invalidOptions(where, `options.weightFrom must be a header name or a function (req) => number, got ${describe(weightFrom)}`);
  }
  if (retryAfter !== undefined && !(typeof retryAfter === "number" && Number.isFinite(retryAfter) && retryAfter >= 0)) {
    throw invalidOptions(where, `options.retryAfter must be a finite number of seconds >= 0, got ${describe(retryAfter)}`);
  }
  if (onDenied !== undefined && typeof onDenied !== "function") {
    throw invalidOptions(where, `options.onDenied must be a function, got ${describe(onDenied)}`);
  }
  return {
    client: waitstate,
    tagOf: tagReader((tagFrom as TagSource<Req> | undefined) ?? DEFAULT_TAG_HEADER, readHeader),
    weightOf: weightFrom === undefined ? noWeight : weightReader(weightFrom as WeightSource<Req>, readHeader),
    retryAfter: String(Math.ceil((retryAfter as number | undefined) ?? DEFAULT_RETRY_AFTER_SECONDS)),
  };
}

function isNonEmptyString(value: unknown): value is string {
  return typeof value === "string" && value.length > 0;
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  return typeof value;
}

/** Why a request was turned away, for people reading the 429 body. */
const DENIAL_MESSAGES: Readonly<Record<GateReason, string>> = {
  allowed: "the request was allowed",
  lease_expired: "the policy lease expired and safe mode is limiting traffic",
  cap_exceeded: "the plan's usage cap is exceeded",
  suspended: "the account is suspended",
  kill_signal: "the kill switch is on for all traffic",
  tag_blocked: "traffic for this tag is blocked by policy",
  global_block: "all traffic is blocked by policy",
  over_weight: "the request's weight is over the current limit",
};

function denialJson(reason: string): string {
  const why = (DENIAL_MESSAGES as Readonly<Record<string, string>>)[reason] ?? "the policy denied it";
  return JSON.stringify({
    error: { code: "RATE_LIMITED", message: `Too many requests: ${why} (reason: ${reason}).`, reason },
  });
}

// Built once: turning a request away under load should cost no more than letting one through.
const DENIAL_BODIES = new Map<string, string>((Object.keys(DENIAL_MESSAGES) as GateReason[]).map((reason) => [reason, denialJson(reason)]));

/** The 429 body: `{"error":{"code":"RATE_LIMITED","message","reason"}}`. */
export function denialBody(reason: string): string {
  return DENIAL_BODIES.get(reason) ?? denialJson(reason);
}

export const JSON_CONTENT_TYPE = "application/json; charset=utf-8";

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
