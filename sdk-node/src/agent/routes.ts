/**
 * The agent's routes as plain functions: a parsed JSON body in, an
 * {@link AgentReply} out. No I/O here: the HTTP shell (`server.ts`) reads and
 * parses bodies, looks the route up and writes the reply. Every route feeds the
 * one client, so one pulse carries the telemetry of every caller on the node.
 */
import type { WaitState } from "../client.js";
import { isValidCustomMetricName, RESERVED_METRIC_NAMES } from "../../../protocol/src/constants.js";

/** The part of the `WaitState` client the agent calls. None of these throws. */
export type AgentClient = Pick<WaitState, "gate" | "reportLatency" | "reportError" | "report" | "status">;

/**
 * Every error the agent answers with, and its status. Every error body is
 * `{"error":{"code","message"}}`; the tests walk this table.
 */
export const AGENT_ERROR_STATUS = Object.freeze({
  /** The body is not JSON. */
  INVALID_JSON: 400,
  /** The body is JSON but not what the route takes; the message names the field. */
  INVALID_BODY: 400,
  /** The body is over the limit (64 KiB). 400 rather than 413, so every bad body is one status. */
  BODY_TOO_LARGE: 400,
  /** `/report-metric` with a name the control plane would refuse. */
  INVALID_METRIC_NAME: 400,
  NOT_FOUND: 404,
  /** A known path with the wrong method; the reply carries `Allow`. */
  METHOD_NOT_ALLOWED: 405,
  /** A bug (the client threw, which it should never do). Nothing a caller sends leads here. */
  INTERNAL: 500,
});
export type AgentErrorCode = keyof typeof AGENT_ERROR_STATUS;

/** What a route answers; the shell serializes `body` as JSON (none for 204). */
export interface AgentReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export function errorReply(code: AgentErrorCode, message: string, headers?: Record<string, string>): AgentReply {
  return { status: AGENT_ERROR_STATUS[code], body: { error: { code, message } }, ...(headers ? { headers } : {}) };
}

const NO_CONTENT: AgentReply = Object.freeze({ status: 204 });

// ------------------------------------------------------------------ fields

type Checked<T> = { ok: true; value: T } | { ok: false; why: string };
/** Checks one field's value; `undefined` means the field is absent. */
type Field<T> = (value: unknown) => Checked<T>;
type FieldType<F> = F extends Field<infer T> ? T : never;
type Parsed<S extends Record<string, Field<unknown>>> = { [K in keyof S]: FieldType<S[K]> };

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return String(value);
}

function fail(why: string, value: unknown): { ok: false; why: string } {
  return { ok: false, why: `${why}, got ${describe(value)}` };
}

const text: Field<string> = (v) => (typeof v === "string" ? { ok: true, value: v } : fail("expected a string", v));
const nonNegative: Field<number> = (v) =>
  typeof v === "number" && Number.isFinite(v) && v >= 0 ? { ok: true, value: v } : fail("expected a finite number >= 0", v);
const finite: Field<number> = (v) =>
  typeof v === "number" && Number.isFinite(v) ? { ok: true, value: v } : fail("expected a finite number", v);
const flag: Field<boolean> = (v) => (typeof v === "boolean" ? { ok: true, value: v } : fail("expected true or false", v));
const object: Field<Record<string, unknown>> = (v) =>
  typeof v === "object" && v !== null && !Array.isArray(v)
    ? { ok: true, value: v as Record<string, unknown> }
    : fail("expected an object", v);

/** Absent or `null` (what many languages send for "not set") is `undefined`. */
function optional<T>(field: Field<T>): Field<T | undefined> {
  return (v) => (v === undefined || v === null ? { ok: true, value: undefined } : field(v));
}

function required<T>(field: Field<T>): Field<T> {
  return (v) => (v === undefined || v === null ? { ok: false, why: "required" } : field(v));
}

/** Checks the fields of `shape` in order; the first bad one becomes `"<field>: <why>"`. Other fields are ignored. */
function parseFields<S extends Record<string, Field<unknown>>>(
  body: Record<string, unknown>,
  shape: S,
): { ok: true; value: Parsed<S> } | { ok: false; reply: AgentReply } {
  const value: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(shape)) {
    const checked = field(body[name]);
    if (!checked.ok) return { ok: false, reply: errorReply("INVALID_BODY", `${name}: ${checked.why}`) };
    value[name] = checked.value;
  }
  return { ok: true, value: value as Parsed<S> };
}

// ------------------------------------------------------------------ routes

/** Records telemetry of a request that already finished. */
function reportFinished(client: AgentClient, tag: string | undefined, latencyMs: number | undefined, error: boolean | undefined): void {
  if (latencyMs !== undefined) client.reportLatency(latencyMs, tag);
  if (error === true) client.reportError(tag);
}

const GATE_BODY = { tag: optional(text), weight: optional(nonNegative), latency_ms: optional(nonNegative), error: optional(flag) };

/**
 * `POST /gate`. `latency_ms` and `error` describe an earlier request of the
 * caller, so they are recorded before the decision and whatever it is.
 */
function gateRoute(client: AgentClient, body: Record<string, unknown>): AgentReply {
  const parsed = parseFields(body, GATE_BODY);
  if (!parsed.ok) return parsed.reply;
  const { tag, weight, latency_ms, error } = parsed.value;
  reportFinished(client, tag, latency_ms, error);
  const decision = client.gate(tag, weight);
  return { status: 200, body: { allowed: decision.allowed, reason: decision.reason } };
}

const REPORT_LATENCY_BODY = { ms: required(nonNegative), tag: optional(text) };

function reportLatencyRoute(client: AgentClient, body: Record<string, unknown>): AgentReply {
  const parsed = parseFields(body, REPORT_LATENCY_BODY);
  if (!parsed.ok) return parsed.reply;
  client.reportLatency(parsed.value.ms, parsed.value.tag);
  return NO_CONTENT;
}

const REPORT_ERROR_BODY = { tag: optional(text) };

function reportErrorRoute(client: AgentClient, body: Record<string, unknown>): AgentReply {
  const parsed = parseFields(body, REPORT_ERROR_BODY);
  if (!parsed.ok) return parsed.reply;
  client.reportError(parsed.value.tag);
  return NO_CONTENT;
}

const REPORT_METRIC_BODY = { metric: required(text), value: required(finite), tag: optional(text) };

/** `POST /report-metric`. The name is checked here with the client's rule, so the caller gets a 400 instead of a silent drop. */
function reportMetricRoute(client: AgentClient, body: Record<string, unknown>): AgentReply {
  const parsed = parseFields(body, REPORT_METRIC_BODY);
  if (!parsed.ok) return parsed.reply;
  const { metric, value, tag } = parsed.value;
  if (!isValidCustomMetricName(metric)) {
    return errorReply(
      "INVALID_METRIC_NAME",
      `metric: ${describe(metric)} is not a valid custom metric name (lowercase letters, digits and '_', a letter first, ` +
        `at most 63 characters, none of ${RESERVED_METRIC_NAMES.join(", ")})`,
    );
  }
  client.report(metric, value, tag);
  return NO_CONTENT;
}

/** `GET /health`: 200 whenever the agent runs, synced or not (the gate fails open, so an unsynced agent is still useful). */
function healthRoute(client: AgentClient): AgentReply {
  const status = client.status();
  return {
    status: 200,
    body: {
      status: "ok",
      instanceId: status.instanceId,
      synced: status.synced,
      ...(status.policyVersion !== null ? { policyVersion: status.policyVersion } : {}),
      safeMode: status.safeMode,
    },
  };
}

// ------------------------------------------------------------------ Apollo Router coprocessor

export const TAG_HEADER = "x-waitstate-tag";
export const WEIGHT_HEADER = "x-waitstate-weight";
/** The status a denied request gets from the router. */
export const COPROCESSOR_BREAK_STATUS = 429;

const COPROCESS_BODY = {
  stage: optional(text),
  headers: optional(object),
  tag: optional(text),
  weight: optional(nonNegative),
  latencyMs: optional(nonNegative),
  error: optional(flag),
};

/** A header of the router's `headers` map (values are string arrays), by case-insensitive name. */
function headerOf(headers: Record<string, unknown> | undefined, name: string): string | undefined {
  if (headers === undefined) return undefined;
  for (const key of Object.keys(headers)) {
    if (key.toLowerCase() !== name) continue;
    const value = headers[key];
    const first = Array.isArray(value) ? (value as unknown[])[0] : value;
    return typeof first === "string" ? first : undefined;
  }
  return undefined;
}

/**
 * The weight header, leniently: headers come from end users, and a malformed
 * one must not fail their request, so anything but a finite number >= 0 means
 * the default weight (as the middlewares do).
 */
function headerWeight(headers: Record<string, unknown> | undefined): number | undefined {
  const raw = headerOf(headers, WEIGHT_HEADER)?.trim();
  if (raw === undefined || raw === "") return undefined;
  const weight = Number(raw);
  return Number.isFinite(weight) && weight >= 0 ? weight : undefined;
}

/** The GraphQL error response a denied request gets, in the shape of the stage's `body` (a string at the router stage). */
function breakBody(received: unknown, reason: string, tag: string | undefined): unknown {
  const response = {
    errors: [
      {
        message: `Too many requests: WaitState denied this request (reason: ${reason}).`,
        extensions: { code: "RATE_LIMITED", reason, ...(tag !== undefined ? { tag } : {}) },
      },
    ],
  };
  return typeof received === "string" ? JSON.stringify(response) : response;
}

/**
 * `POST /coprocess`: an Apollo Router coprocessor. Request stages
 * (`RouterRequest`, `SupergraphRequest`, `ExecutionRequest`,
 * `SubgraphRequest`, or no stage) are gated; response stages only record
 * telemetry, so a router that sends both halves counts each request once.
 * The tag and weight come from top-level `tag`/`weight` if given, else from
 * the `x-waitstate-tag`/`x-waitstate-weight` request headers. The answer is
 * the request as received with `control` set (and `body` replaced when it
 * breaks).
 */
function coprocessRoute(client: AgentClient, body: Record<string, unknown>): AgentReply {
  const parsed = parseFields(body, COPROCESS_BODY);
  if (!parsed.ok) return parsed.reply;
  const { stage, headers, latencyMs, error } = parsed.value;
  const tag = parsed.value.tag ?? (headerOf(headers, TAG_HEADER) || undefined);
  const weight = parsed.value.weight ?? headerWeight(headers);
  reportFinished(client, tag, latencyMs, error);
  if (stage !== undefined && !stage.endsWith("Request")) return { status: 200, body: { ...body, control: "continue" } };
  const decision = client.gate(tag, weight);
  if (decision.allowed) return { status: 200, body: { ...body, control: "continue" } };
  return {
    status: 200,
    body: { ...body, control: { break: COPROCESSOR_BREAK_STATUS }, body: breakBody(body.body, decision.reason, tag) },
  };
}

// ------------------------------------------------------------------ table

export interface AgentRoute {
  readonly method: "GET" | "POST";
  /** Whether an empty body stands for `{}` (all defaults). */
  readonly emptyBodyAllowed: boolean;
  readonly handle: (client: AgentClient, body: Record<string, unknown>) => AgentReply;
}

/** Every route by path. The shell answers 404 for other paths and 405 (with `Allow`) for other methods. */
export const AGENT_ROUTES: ReadonlyMap<string, AgentRoute> = new Map<string, AgentRoute>([
  ["/gate", { method: "POST", emptyBodyAllowed: true, handle: gateRoute }],
  ["/coprocess", { method: "POST", emptyBodyAllowed: false, handle: coprocessRoute }],
  ["/report-latency", { method: "POST", emptyBodyAllowed: true, handle: reportLatencyRoute }],
  ["/report-error", { method: "POST", emptyBodyAllowed: true, handle: reportErrorRoute }],
  ["/report-metric", { method: "POST", emptyBodyAllowed: true, handle: reportMetricRoute }],
  ["/health", { method: "GET", emptyBodyAllowed: true, handle: healthRoute }],
]);

/**
 * Parses a request body for `route`: empty (or whitespace) is `{}` where the
 * route allows it; otherwise it must be a JSON object.
 */
export function parseBody(route: AgentRoute, raw: string): { ok: true; body: Record<string, unknown> } | { ok: false; reply: AgentReply } {
  if (raw.trim() === "") {
    return route.emptyBodyAllowed
      ? { ok: true, body: {} }
      : { ok: false, reply: errorReply("INVALID_BODY", "body: expected a JSON object, got nothing") };
  }
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    return { ok: false, reply: errorReply("INVALID_JSON", `body: not valid JSON (${e instanceof Error ? e.message : String(e)})`) };
  }
  const checked = object(value);
  if (!checked.ok) return { ok: false, reply: errorReply("INVALID_BODY", `body: ${checked.why}`) };
  return { ok: true, body: checked.value };
}
