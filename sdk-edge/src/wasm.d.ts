/** A `.wasm` module import (workerd, wrangler, bundlers): the compiled module. */
declare module "*.wasm" {
  const module: WebAssembly.Module;
  export default module;
}
