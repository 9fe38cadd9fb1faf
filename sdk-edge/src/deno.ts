// Deno: read the wasm file next to this module (needs --allow-read for it).
import { initSync } from "./core.js";

declare const Deno: { readFileSync(path: URL): Uint8Array<ArrayBuffer> };

initSync(new WebAssembly.Module(Deno.readFileSync(new URL("./waitstate.wasm", import.meta.url))));

// Loader only: the API is index.ts's list.
export * from "./index.js";
