// Reflex evaluation cost: 20 tags × 50 rules over a window of 3 instances' pulses
// (issue 4's target: ≤ 50 µs per evaluation). Median of interleaved rounds.
import { readFileSync, writeFileSync } from "node:fs";
import { evaluateReflexes, mergeWindow } from "@waitstate/protocol/reflex";
import { LatencyHistogram } from "@waitstate/protocol/histogram";

const NOW = 1_740_000_000_000;
const TAGS = Array.from({ length: 20 }, (_, i) => `tag${i}`);
const METRICS = ["latency", "p95_latency", "p99_latency", "errors", "error_rate", "rps", "queue_depth"];
const histogram = LatencyHistogram.fromValues(Array.from({ length: 500 }, (_, i) => 5 + (i % 50) * 7)).encode();
const pulses = Array.from({ length: 3 }, (_, k) => ({
  instanceId: `web-0${k}`,
  usageDelta: 5000,
  metrics: { latency: 120, errors: 12, latencyHistogram: histogram },
  tagMetrics: TAGS.map((tag) => ({
    tag,
    latency: 120,
    count: 250,
    errors: 1,
    latencyHistogram: histogram,
    customMetrics: { queue_depth: { min: 1, max: 90, sum: 400, count: 10 } },
  })),
  ts: NOW - k * 1000,
}));
const rules = Array.from({ length: 50 }, (_, i) => ({
  id: `rule-${i}`,
  tagName: i % 10 === 0 ? null : TAGS[i % 20],
  metric: METRICS[i % METRICS.length],
  metricTag: i % 3 === 0 ? TAGS[(i + 1) % 20] : null,
  operator: i % 2 ? "gt" : "lt",
  threshold: (i % 7) * 40,
  action: i % 4 ? "throttle" : "block",
  actionValue: 0.5,
  enabled: true,
  priority: i,
}));
const tags = Object.fromEntries(TAGS.map((t, i) => [t, { maxWeight: 10, priority: i }]));

let states = {};
const window = mergeWindow(pulses, NOW);
function mergeOnly() {
  return mergeWindow(pulses, NOW).pulses;
}
function evaluateOnly() {
  const out = evaluateReflexes({ rules, tags, stats: window, states, now: NOW });
  states = out.states;
  return out.applied.length;
}

function medianMicros(fn) {
  for (let i = 0; i < 2000; i++) fn();
  const samples = [];
  for (let round = 0; round < 15; round++) {
    const n = 500;
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    samples.push(Number(process.hrtime.bigint() - start) / n / 1000);
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1];
}

const evaluate = medianMicros(evaluateOnly);
const merge = medianMicros(mergeOnly);
const table = [
  "| reflex step (20 tags, 50 rules, 3 instances) | median µs |",
  "|---|---:|",
  `| evaluate 50 rules on a merged window (target ≤ 50 µs) | ${evaluate.toFixed(1)} |`,
  `| merge the window: 3 pulses × 21 histograms | ${merge.toFixed(1)} |`,
].join("\n");
console.log(`\n${table}`);

const readmePath = new URL("../README.md", import.meta.url);
const readme = readFileSync(readmePath, "utf8");
const marked = /<!-- bench-reflex:start -->[\s\S]*<!-- bench-reflex:end -->/;
if (process.env.BENCH_WRITE_README !== "0" && marked.test(readme)) {
  writeFileSync(readmePath, readme.replace(marked, `<!-- bench-reflex:start -->\n${table}\n<!-- bench-reflex:end -->`));
}
