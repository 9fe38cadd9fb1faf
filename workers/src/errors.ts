/**
 * The one error table: every code the API can answer, and its HTTP status.
 * Every error body is `{"error":{"code","message"}}` (docs/protocol.md#errors). A test walks
 * the whole table, so a new code cannot ship without a status.
 */
import { z } from "zod";
import type { ErrorBody } from "@waitstate/protocol";

export const ErrorCode = z.enum([
  "INVALID_JSON",
  "VALIDATION_FAILED",
  "UNKNOWN_FIELD",
  "UNSUPPORTED_MEDIA_TYPE",
  "PAYLOAD_TOO_LARGE",
  "UNAUTHORIZED",
  "INVALID_TOKEN",
  "TOKEN_EXPIRED",
  "INVALID_SIGNATURE",
  "UNSIGNED_TOKEN_EXCHANGE",
  "TIMESTAMP_SKEW",
  "PULSE_TS_SKEW",
  "UNKNOWN_KEY",
  "KEY_REVOKED",
  "FORBIDDEN",
  "PLAN_LIMIT_REACHED",
  "NOT_FOUND",
  "METHOD_NOT_ALLOWED",
  "CONFLICT",
  "UPGRADE_REQUIRED",
  "NOT_CONFIGURED",
  "INTERNAL_ERROR",
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

const STATUS: Readonly<Record<ErrorCode, 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415 | 426 | 500 | 503>> = {
  INVALID_JSON: 400,
  VALIDATION_FAILED: 400,
  UNKNOWN_FIELD: 400,
  UNSUPPORTED_MEDIA_TYPE: 415,
  PAYLOAD_TOO_LARGE: 413,
  UNAUTHORIZED: 401,
  INVALID_TOKEN: 401,
  TOKEN_EXPIRED: 401,
  INVALID_SIGNATURE: 401,
  UNSIGNED_TOKEN_EXCHANGE: 401,
  TIMESTAMP_SKEW: 401,
  PULSE_TS_SKEW: 400,
  UNKNOWN_KEY: 401,
  KEY_REVOKED: 401,
  FORBIDDEN: 403,
  PLAN_LIMIT_REACHED: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  UPGRADE_REQUIRED: 426,
  NOT_CONFIGURED: 503,
  INTERNAL_ERROR: 500,
};

export function codeToStatus(code: ErrorCode) {
  return STATUS[code];
}

/** The one error body shape: `{"error":{"code","message"}}`. */
export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}

/** Thrown inside routes and middleware; the app's error handler turns it into the body and status. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = "ApiError";
    this.code = code;
  }
  get status() {
    return codeToStatus(this.code);
  }
}
