/**
 * The SDK clients' one error type (`@waitstate/sdk` and `@waitstate/edge`'s
 * `WaitState`): the constructor throws it for bad options; every other failure
 * reaches `onError` as a WaitStateError and never throws. Zero dependencies,
 * so both SDKs compile it in.
 */
export type WaitStateErrorCode =
  /** Constructor options are missing or malformed (the only error that is thrown). */
  | "INVALID_OPTIONS"
  /** The key exchange (`POST /v1/auth/token`) failed; pulses continue, policy reads wait. */
  | "AUTH_FAILED"
  /** A pulse could not be delivered (network, timeout, 5xx, 401…); it is kept and retried. */
  | "PULSE_FAILED"
  /** The control plane refused a pulse as malformed (4xx); it cannot succeed and was dropped. */
  | "PULSE_REJECTED"
  /** `GET /v1/policy` failed; the current policy stays. */
  | "POLICY_FETCH_FAILED"
  /** A policy answer failed the schema; the last good policy stays. */
  | "INVALID_POLICY"
  /** The lease expired: gates follow the safe-mode strategy until the next sync. */
  | "SAFE_MODE"
  /** A telemetry call got a value it cannot record (NaN, negative latency…). */
  | "INVALID_VALUE"
  /** A custom metric name breaks the naming rules or is reserved. */
  | "INVALID_METRIC_NAME"
  /** A tag already carries the most custom metric names a pulse allows; the value was dropped. */
  | "TOO_MANY_METRICS"
  /**
   * The push channel (a WebSocket for policy pushes) could not be opened or
   * was lost; it reconnects with backoff. Pulses and reads are unaffected:
   * only the speed at which a policy change arrives is.
   */
  | "PUSH_FAILED"
  /** A final pulse at shutdown could not be delivered. */
  | "SHUTDOWN_FLUSH_FAILED"
  /**
   * Another process pulses under this client's `instanceId` (the control plane
   * said so in a pulse answer). Every call is still counted once; give each
   * process its own `instanceId` (or leave it unset: a random one is made).
   */
  | "DUPLICATE_INSTANCE"
  /** (@waitstate/edge) The wasm module is not loaded yet (`await init(module)` first): gate() allows, telemetry is dropped. */
  | "NOT_INITIALIZED";

export class WaitStateError extends Error {
  override readonly name = "WaitStateError";
  /** A stable SNAKE_CASE code. */
  readonly code: WaitStateErrorCode;
  /** The HTTP status behind the error, or 0 when there was none (network, timeout, local). */
  readonly status: number;

  constructor(code: WaitStateErrorCode, message: string, status = 0, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.status = status;
  }
}
