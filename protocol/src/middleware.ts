/**
 * What every WaitState middleware does the same way, Node (@waitstate/sdk) and
 * edge (@waitstate/edge) alike: the options that say where a request's tag and
 * weight come from, and the answer to a denied request (`429`, `Retry-After`,
 * `{"error":{"code":"RATE_LIMITED","message","reason"}}`), so that a client
 * cannot tell which SDK turned it away. Nothing here imports zod: the
 * zero-dependency SDKs compile it into their dist.
 */
import type { GateReason } from "./constants.js";

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

/** `Retry-After` on a 429 when a middleware's options name none, seconds. */
export const DEFAULT_RETRY_AFTER_SECONDS = 60;

/** The tag header a middleware reads when its options name none. */
export const DEFAULT_TAG_HEADER = "x-waitstate-tag";

/** A header's weight: a finite number, else `undefined` (weight 1). `""` is not 0. */
export function parseWeight(value: string | undefined): number | undefined {
  if (value === undefined || value === "") return undefined;
  const weight = Number(value);
  return Number.isFinite(weight) ? weight : undefined;
}

/** A header name (case-insensitive), or a function of the request. */
export type TagSource<Req> = string | ((req: Req) => string | undefined);

/** A header name (case-insensitive), or a function of the request. */
export type WeightSource<Req> = string | ((req: Req) => number | undefined);

/** Reads one header; `name` is already lower case. */
export type HeaderReader<Req> = (req: Req, name: string) => string | undefined;

/** The request-side options, checked and turned into what the hot path calls. */
export interface RequestReaders<Req> {
  /** `undefined` means no tag: the client counts it under `__default__`. */
  readonly tagOf: (req: Req) => string | undefined;
  /** `undefined` means the client's default weight, 1. */
  readonly weightOf: (req: Req) => number | undefined;
  /** The `Retry-After` header value. */
  readonly retryAfter: string;
}

/** A value as an error message shows it. */
export function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  return typeof value;
}

function isNonEmptyString(value: unknown): value is string {
  return typeof value === "string" && value.length > 0;
}

function noWeight(): undefined {
  return undefined;
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
 * Checks the options every middleware shares (`tagFrom`, `weightFrom`,
 * `retryAfter`, `onDenied`) once, at creation; the first bad one throws
 * `invalid(message)`, the SDK's own typed error naming it.
 */
export function resolveRequestOptions<Req>(
  options: Readonly<Record<string, unknown>>,
  readHeader: HeaderReader<Req>,
  invalid: (message: string) => Error,
): RequestReaders<Req> {
  const { tagFrom, weightFrom, retryAfter, onDenied } = options;
  if (tagFrom !== undefined && !isNonEmptyString(tagFrom) && typeof tagFrom !== "function") {
    throw invalid(`options.tagFrom must be a header name or a function (req) => string, got ${describe(tagFrom)}`);
  }
  if (weightFrom !== undefined && !isNonEmptyString(weightFrom) && typeof weightFrom !== "function") {
    throw invalid(`options.weightFrom must be a header name or a function (req) => number, got ${describe(weightFrom)}`);
  }
  if (retryAfter !== undefined && !(typeof retryAfter === "number" && Number.isFinite(retryAfter) && retryAfter >= 0)) {
    throw invalid(`options.retryAfter must be a finite number of seconds >= 0, got ${describe(retryAfter)}`);
  }
  if (onDenied !== undefined && typeof onDenied !== "function") {
    throw invalid(`options.onDenied must be a function, got ${describe(onDenied)}`);
  }
  return {
    tagOf: tagReader((tagFrom as TagSource<Req> | undefined) ?? DEFAULT_TAG_HEADER, readHeader),
    weightOf: weightFrom === undefined ? noWeight : weightReader(weightFrom as WeightSource<Req>, readHeader),
    retryAfter: String(Math.ceil((retryAfter as number | undefined) ?? DEFAULT_RETRY_AFTER_SECONDS)),
  };
}

/**
 * The status Next.js answers for the control-flow errors its helpers throw
 * (`redirect()`, `notFound()`, `forbidden()`, `unauthorized()`), or 500 for
 * any other error. Those are read from the error's `digest`, so a redirect is
 * not counted as a failure.
 */
export function nextStatusOfThrown(error: unknown): number {
  const digest = typeof error === "object" && error !== null ? (error as { digest?: unknown }).digest : undefined;
  if (typeof digest !== "string") return 500;
  if (digest.startsWith("NEXT_REDIRECT;")) {
    // "NEXT_REDIRECT;<type>;<url>;<status>;": the url may itself hold ';', so read from the end.
    const parts = digest.split(";");
    const status = Number(parts[parts.length - 2]);
    return status >= 300 && status < 400 ? status : 307;
  }
  if (digest.startsWith("NEXT_HTTP_ERROR_FALLBACK;")) {
    const status = Number(digest.slice("NEXT_HTTP_ERROR_FALLBACK;".length));
    return status >= 400 && status < 600 ? status : 404;
  }
  if (digest === "NEXT_NOT_FOUND") return 404; // Next.js 13–14
  return 500;
}
