// Deno: read the wasm file next to this module (needs --allow-read for it).
import { initSync } from "./core.js";

declare const Deno: { readFileSync(path: URL): Uint8Array<ArrayBuffer> };

initSync(new WebAssembly.Module(Deno.readFileSync(new URL("./waitstate.wasm", import.meta.url))));

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
