// Deno: the wasm file sits at the root of dist/ (this file is built to dist/sdk-edge/src/). Read from disk when the package is
// local (npm: specifiers, a checkout; needs --allow-read for it), fetched when the
// module itself was loaded over https.
import { initSync } from "./core.js";

declare const Deno: { readFileSync(path: URL): Uint8Array<ArrayBuffer> };

const url = new URL("../../waitstate.wasm", import.meta.url);
const bytes = url.protocol === "file:" ? Deno.readFileSync(url) : new Uint8Array(await (await fetch(url)).arrayBuffer());
initSync(new WebAssembly.Module(bytes));

// Loader only: the API is index.ts's list.
export * from "./index.js";
