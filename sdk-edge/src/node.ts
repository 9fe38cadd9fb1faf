// Node: the wasm file sits next to this module; compiled synchronously at import.
import { readFileSync } from "node:fs";
import { initSync } from "./core.js";

initSync(new WebAssembly.Module(readFileSync(new URL("./waitstate.wasm", import.meta.url))));

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
