// workerd (Cloudflare Workers, wrangler, miniflare): the wasm arrives as a module
// import — workerd forbids compiling wasm from bytes at run time.
// The path is the built file's (dist/sdk-edge/src/workerd.js → dist/waitstate.wasm).
import wasm from "../../waitstate.wasm";
import { initSync } from "./core.js";

initSync(wasm);

// Loader only: the API is index.ts's list.
export * from "./index.js";
