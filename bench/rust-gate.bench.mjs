// `npm run bench`: the Rust crate's gate() (rust/waitstate/benches/gate.rs),
// criterion's median in ns per call, written into rust/waitstate/README.md
// between the bench-rust markers. Skipped, saying why, without a Rust
// toolchain. Never asserted in tests: this machine is shared and noisy.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { cargo, findToolchain, RUST_DIR } from "../scripts/build-wasm.mjs";

const tc = findToolchain({ wasm: false });
if (tc === null) {
  console.log("rust gate bench: skipped (no Rust toolchain here)");
  process.exit(0);
}
const { code } = await cargo(["bench", "-p", "waitstate", "--bench", "gate", "--", "--warm-up-time", "2", "--measurement-time", "5"], {
  tc,
});
if (code !== 0) process.exit(code);
const estimates = path.join(RUST_DIR, "target", "criterion", "gate", "new", "estimates.json");
if (!existsSync(estimates)) throw new Error(`criterion wrote no ${estimates}`);
const { median } = JSON.parse(readFileSync(estimates, "utf8"));
const ns = median.point_estimate;
const [lo, hi] = [median.confidence_interval.lower_bound, median.confidence_interval.upper_bound];
console.log(`rust gate(): median ${ns.toFixed(1)} ns per call (95 % CI ${lo.toFixed(1)}–${hi.toFixed(1)} ns)`);

const readmePath = path.join(RUST_DIR, "waitstate", "README.md");
const readme = readFileSync(readmePath, "utf8");
const marked = /<!-- bench-rust:start -->[\s\S]*<!-- bench-rust:end -->/;
if (process.env.BENCH_WRITE_README !== "0" && marked.test(readme)) {
  const figure = `<!-- bench-rust:start -->**${ns.toFixed(1)} ns** median (95 % CI ${lo.toFixed(1)}–${hi.toFixed(1)})<!-- bench-rust:end -->`;
  writeFileSync(readmePath, readme.replace(marked, figure));
}
