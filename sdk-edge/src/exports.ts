// The public surface, shared by every runtime entry (no `export *`: the list is the API).
export {
  DEFAULT_TAG,
  EdgeError,
  EdgeGate,
  OVERFLOW_TAG,
  gate,
  init,
  initSync,
  isInitialized,
  signPulse,
  sign_pulse,
  validatePolicy,
} from "./core.js";
export type {
  EdgeCounts,
  EdgeErrorCode,
  EdgeGateOptions,
  EdgePolicy,
  EdgeTagCount,
  GateReason,
  GateResult,
  PolicyStatus,
  SafeModeStrategy,
} from "./core.js";
