// The public surface: this list is the API. Runtimes with no way of their own to load
// the wasm (Vercel Edge, browsers, bundlers) use this entry and call
// `await init(moduleOrBytes)` with the module their platform gives for
// `@waitstate/edge/waitstate.wasm`. The workerd, node and deno entries load it
// themselves, then re-export exactly this list.
export {
  ABI_VERSION,
  DEFAULT_TAG,
  EdgeError,
  EdgeGate,
  EdgeHistogram,
  OVERFLOW_TAG,
  gate,
  init,
  initSync,
  isInitialized,
  signPulse,
  sign_pulse,
  validatePolicy,
} from "./core.js";
export { WaitState, WaitStateError } from "./client.js";
export type { WaitStateErrorCode, WaitStateOptions, WaitStateStatus } from "./client.js";
export type {
  EdgeCounts,
  EdgeErrorCode,
  EdgeGateOptions,
  EdgePolicy,
  EdgeTagCount,
  GateReason,
  GateResult,
  HistogramEncoding,
  PolicyStatus,
  PulseOptions,
  SendPulseOptions,
  SignedPulse,
  SafeModeStrategy,
} from "./core.js";
