// workerd (Cloudflare Workers, wrangler, miniflare): the wasm arrives as a module
// import — workerd forbids compiling wasm from bytes at run time.
import wasm from "./waitstate.wasm";
import { initSync } from "./core.js";

initSync(wasm);

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
