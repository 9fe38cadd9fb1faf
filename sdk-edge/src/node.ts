// Node: the wasm file sits at the root of dist/ (this file is built to dist/sdk-edge/src/); compiled synchronously at import.
import { readFileSync } from "node:fs";
import { initSync } from "./core.js";

initSync(new WebAssembly.Module(readFileSync(new URL("../../waitstate.wasm", import.meta.url))));

// Loader only: the API is index.ts's list.
export * from "./index.js";
