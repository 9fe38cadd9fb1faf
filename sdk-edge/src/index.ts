// Any other runtime (Vercel Edge, browsers, bundlers): call `await init(moduleOrBytes)`
// with the module your platform gives for `@waitstate/edge/waitstate.wasm`.
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
} from "./exports.js";
export type * from "./exports.js";
