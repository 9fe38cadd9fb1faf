// `npm run bench` (Python part): builds the extension with Debian's python3, then
// bench/python/bench.py: gate() from Python against a plain dict.get in the same
// run, objects allocated per gate() call, and the throughput an app loses to the
// FastAPI and Flask integrations. Printed, never asserted (the machine is shared).
import { buildNative, missing, PYTHON } from "../scripts/build-python.mjs";
import { log, run, ROOT } from "../scripts/lib.mjs";

const why = missing();
if (why !== null) {
  log(`python bench skipped: ${why}`);
} else if ((await buildNative()) !== 0) {
  process.exitCode = 1;
} else {
  const { code } = await run(PYTHON, ["bench/python/bench.py"], { cwd: ROOT, env: { PYTHONNOUSERSITE: "1" } });
  process.exitCode = code;
}
