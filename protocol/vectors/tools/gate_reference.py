"""Independent reference for gate.json: re-derives every expectation from
protocol/vectors/README.md in plain Python and prints mismatches. It checks the
hand-written vectors; no test suite runs it.  Run: python3 gate_reference.py"""
import os
import json, math
V = json.load(open(os.path.join(os.path.dirname(__file__), "..", "gate.json")))
def w(x):
    if isinstance(x, str): x = float(x.replace("Infinity","inf")) if x != "-0" else -0.0
    return x
bad = 0
for c in V["cases"]:
    cfg = c.get("config", {"safeModeStrategy": "open", "safeModeMaxRps": 50})
    p = c["policy"]; last = c["lastSyncAt"]
    tokens = None; upd = None
    for k in c["calls"]:
        now = k["now"]; tag = k.get("tag", "__default__") or "__default__"
        weight = w(k.get("weight", 1))
        if weight != weight: weight = 1
        elif weight < 0: weight = 0
        def enforce():
            st = p.get("status", "ok")
            if st == "suspended": return (True, "suspended")
            if p.get("killSignal"): return (False, "kill_signal")
            if st == "cap_exceeded": return (True, "cap_exceeded")
            tm = p.get("tagMaxWeights", {})
            if tag in tm: lim, ft = tm[tag], True
            else: lim, ft = p.get("globalMaxWeight"), False
            if lim is None: lim = math.inf
            if lim == 0: return (False, "tag_blocked" if ft else "global_block")
            return (False, "over_weight") if weight > lim else (True, "allowed")
        if last is None or p is None: r = (True, "allowed")
        elif now > last + p.get("leaseDurationSeconds", 60) * 1000:
            s = cfg["safeModeStrategy"]; cap = cfg["safeModeMaxRps"]
            if s == "open": r = (True, "lease_expired")
            elif s == "last_policy": r = (enforce()[0], "lease_expired")
            else:
                if tokens is None: tokens, upd = cap, now
                else:
                    el = now - upd
                    if el > 0: tokens = min(cap, tokens + el * cap / 1000)
                    upd = now
                if tokens >= 1: tokens -= 1; r = (True, "lease_expired")
                else: r = (False, "lease_expired")
        else: r = enforce()
        e = (k["expect"]["allowed"], k["expect"]["reason"])
        if r != e: bad += 1; print("MISMATCH", c["name"], k, r, tokens)
print("mismatches", bad)
raise SystemExit(1 if bad else 0)
