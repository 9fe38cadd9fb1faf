// Node: the wasm file sits next to this module; compiled synchronously at import.
import { readFileSync } from "node:fs";
import { initSync } from "./core.js";

initSync(new WebAssembly.Module(readFileSync(new URL("./waitstate.wasm", import.meta.url))));

// Loader only: the API is index.ts's list.
export * from "./index.js";
