/**
 * @waitstate/sdk: WaitState for Node.js. Zero runtime dependencies.
 *
 * The client is {@link WaitState}; the rest are the documented advanced exports
 * for low-level use. Framework middlewares live in subpath exports
 * (`@waitstate/sdk/express`, `/fastify`, `/hono`, `/nextjs`). Services in
 * other languages use the Rust agent sidecar (`rust/agent`).
 */
export { WaitState, BASE_URL_ENV, type WaitStateOptions, type WaitStateStatus } from "./client.js";
export { WaitStateError, type WaitStateErrorCode } from "./errors.js";
export { gate, RESULTS, type GatePolicy, type GateResult } from "../../protocol/src/gate.js";
export { PolicyCache, parsePolicy, type Policy, type PolicyParseResult } from "./policy.js";
export {
  TelemetryCollector,
  buildPulses,
  MAX_SDK_TAGS,
  type PreparedPulse,
  type TagTelemetry,
  type TelemetryCollectorOptions,
} from "./telemetry.js";
export {
  signPulse,
  createSignedHeaders,
  signTokenExchange,
  createTokenExchangeHeaders,
  type SignedHeaders,
  type TokenExchangeHeaders,
} from "./signing.js";
export { AuthManager, TOKEN_REFRESH_MARGIN_MS, type AuthManagerOptions } from "./auth.js";
export { LatencyHistogram, type HistogramEncoding } from "../../protocol/src/histogram.js";
export type { GateReason, PolicyStatus, SafeModeStrategy } from "../../protocol/src/constants.js";
