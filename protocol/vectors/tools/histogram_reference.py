"""Independent reference for histogram.json (protocol/vectors/README.md):
plain-Python bucketing, merge and quantiles. It produced the expected values
in histogram.json; no test suite runs it.
Run: python3 histogram_reference.py > ../histogram.json"""
import json, math, random

UPPER = [0.1]
for _ in range(1, 165):
    UPPER.append(UPPER[-1] * 1.1)
OVERFLOW = 165

def index(v):
    for i, u in enumerate(UPPER):
        if v <= u:
            return i
    return OVERFLOW

def rep(i):
    if i == 0:
        return 0.1
    if i == OVERFLOW:
        return UPPER[-1]
    lo, hi = UPPER[i - 1], UPPER[i]
    return 2 * lo * hi / (lo + hi)

def recordable(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0

def build(values):
    counts, n, s, lo, hi = {}, 0, 0.0, math.inf, -math.inf
    for v in values:
        if not recordable(v):
            continue
        i = index(v)
        counts[i] = counts.get(i, 0) + 1
        n += 1; s += v; lo = min(lo, v); hi = max(hi, v)
    return counts, n, s, lo, hi

def encode(h):
    counts, n, s, lo, hi = h
    b = []
    for i in sorted(counts):
        b += [i, counts[i]]
    return {"n": n, "s": s, "lo": lo, "hi": hi, "b": b} if n else {"n": 0, "s": 0, "lo": 0, "hi": 0, "b": []}

def quantile(h, q):
    counts, n, s, lo, hi = h
    if n == 0:
        return None
    rank = max(1, math.ceil(q * n))
    cum = 0
    for i in sorted(counts):
        cum += counts[i]
        if cum >= rank:
            return min(max(rep(i), lo), hi)

def as_json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    return v

QS = [0, 0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1]
cases = []
for v in [0, 0.05, 0.1, 0.10000000000000002, 0.11, UPPER[1], UPPER[1] * (1 + 1e-15), UPPER[10], 1, 10, 100, 1000, 60000,
          UPPER[164], 600000, 614328.1, 1e300]:
    cases.append({"kind": "index", "name": f"index of {v!r}", "value": v, "expectIndex": index(v)})
cases.append({"kind": "bounds", "name": "bucket upper bounds", "first": UPPER[0], "tenth": UPPER[10], "last": UPPER[164],
              "count": len(UPPER)})

def record_case(name, values):
    clean = [v for v in values if recordable(v)]
    h = build(clean)
    cases.append({"kind": "record", "name": name, "values": [as_json_value(v) for v in values], "expect": encode(h),
                  "quantiles": [[q, quantile(h, q)] for q in QS]})

record_case("empty histogram", [])
record_case("a single observation is reported exactly at every quantile", [142.0])
record_case("two observations far apart", [1, 1000])
record_case("values below 0.1 ms share bucket 0 and clamp to the minimum", [0, 0.01, 0.05, 0.1])
record_case("overflow beyond 10 minutes is kept and clamped to the maximum", [5, 700000, 1e9])
record_case("NaN, negative and infinite values are refused", [10, float("nan"), -1, float("inf"), float("-inf"), 20])
record_case("1..100 ms", list(range(1, 101)))
rnd = random.Random(42)
record_case("1000 log-uniform latencies, 0.5 ms .. 5 s", [round(math.exp(rnd.uniform(math.log(0.5), math.log(5000))), 3) for _ in range(1000)])
record_case("shedding-table shape: mostly 80 ms with a 1200 ms tail", [80] * 95 + [1200] * 5)

def merge_case(name, a, b):
    h = build(a + b)
    cases.append({"kind": "merge", "name": name, "a": a, "b": b, "expect": encode(h), "quantiles": [[q, quantile(h, q)] for q in QS]})

merge_case("fleet p95 across instances where only one is slow (not an average of averages)",
           [20] * 100 + [25] * 100, [900] * 20 + [30] * 80)
merge_case("merge with an empty histogram", [1, 2, 3], [])
merge_case("merge of two empties", [], [])
merge_case("disjoint ranges", [0.2, 0.3, 0.4], [100000, 200000])

for name, enc, err in [
    ("not an object", [1, 2], "object"),
    ("bucket index out of range", {"n": 1, "s": 1, "lo": 1, "hi": 1, "b": [166, 1]}, "range"),
    ("negative bucket index", {"n": 1, "s": 1, "lo": 1, "hi": 1, "b": [-1, 1]}, "range"),
    ("indexes not increasing", {"n": 2, "s": 2, "lo": 1, "hi": 1, "b": [5, 1, 5, 1]}, "increase"),
    ("zero count", {"n": 0, "s": 0, "lo": 0, "hi": 0, "b": [5, 0]}, "count"),
    ("fractional count", {"n": 1.5, "s": 1, "lo": 1, "hi": 1, "b": [5, 1.5]}, "n"),
    ("n differs from bucket counts", {"n": 3, "s": 1, "lo": 1, "hi": 1, "b": [5, 1]}, "n"),
    ("lo above hi", {"n": 1, "s": 1, "lo": 2, "hi": 1, "b": [5, 1]}, "lo"),
    ("odd-length pairs", {"n": 1, "s": 1, "lo": 1, "hi": 1, "b": [5]}, "pairs"),
    ("negative sum", {"n": 1, "s": -1, "lo": 1, "hi": 1, "b": [5, 1]}, "s"),
]:
    cases.append({"kind": "decode_error", "name": name, "encoded": enc, "error": err})

print(json.dumps({"version": 1, "cases": cases}, indent=1))
