"""Independent reference for lifecycle.json: re-derives every expectation from
the rules in protocol/vectors/README.md ("The rules, exactly") in plain Python
and prints mismatches. It checks the hand-written vectors and the README's
wording; no test suite runs it.  Run: python3 lifecycle_reference.py"""
import json, math, os
V = json.load(open(os.path.join(os.path.dirname(__file__), "..", "lifecycle.json")))

def rnd(x): return math.floor(x + 0.5)  # half up; Python's round() is half-even
def pulse_delay(interval, r): return rnd(interval * (0.9 + 0.2 * r))
def poll_delay(interval, r): return rnd(min(60000, max(1000, 2 * interval)) * (0.9 + 0.2 * r))
def backoff(interval, lease_ms, failures, r):
    lease = lease_ms if lease_ms > 0 else 60000
    cap = max(interval, min(30000, lease / 4))
    return rnd(min(cap, interval * 2 ** min(failures, 16)) * (0.5 + 0.5 * r))
def pacing(p):
    if p["status"] == "cap_exceeded":
        return {"intervalMs": max(p["pulseInterval"], 300000), "leaseSeconds": p["leaseDurationSeconds"] + 600, "standDownMs": None}
    if p["status"] == "suspended":
        retry = p.get("retryAfterSeconds", 86400)
        return {"intervalMs": None, "leaseSeconds": p["leaseDurationSeconds"] + retry, "standDownMs": retry * 1000}
    return {"intervalMs": p["pulseInterval"], "leaseSeconds": p["leaseDurationSeconds"], "standDownMs": None}
def pulse_answer(status, counted, valid):
    if status is None: return "retry"
    if 200 <= status < 300: return "policy" if valid else "counted" if counted else "not_delivered"
    return "rejected" if status in (400, 413, 422) else "retry"
def poll_answer(status, valid):
    if status == 304: return "not_modified"
    if status == 200: return "policy" if valid else "invalid_policy"
    return "unauthorized" if status == 401 else "failed"
def refresh_delay(expires_at, now): return max(1000, expires_at - 120000 - now)
def retry_delay(n, r): return rnd(min(60000, 1000 * 2 ** min(n - 1, 16)) * (0.8 + 0.4 * r))

FUNCTIONS = {
    "pulseDelayMs": lambda a: pulse_delay(a["intervalMs"], a["random"]),
    "pollDelayMs": lambda a: poll_delay(a["intervalMs"], a["random"]),
    "backoffMs": lambda a: backoff(a["intervalMs"], a["leaseMs"], a["failures"], a["random"]),
    "policyPacing": lambda a: pacing(a["policy"]),
    "classifyPulseAnswer": lambda a: pulse_answer(a["status"], a["counted"], a["policyValid"]),
    "pulseLeavesOutbox": lambda a: a["outcome"] in ("policy", "counted", "rejected"),
    "classifyPollAnswer": lambda a: poll_answer(a["status"], a["policyValid"]),
    "tokenRefreshDelayMs": lambda a: refresh_delay(a["expiresAt"], a["now"]),
    "tokenRetryDelayMs": lambda a: retry_delay(a["failures"], a["random"]),
    "roundMs": lambda a: rnd(a["ms"]),
}

def initial(interval):
    return {"intervalMs": interval, "leaseMs": 0, "lastSyncAt": None, "policyIssuedAt": None, "safeMode": False,
            "suspendedUntil": None, "failures": 0, "nextPulseAt": None, "nextPollAt": None, "stopped": False}

def lease_check_at(s):
    return None if s["stopped"] or s["safeMode"] or s["lastSyncAt"] is None else s["lastSyncAt"] + s["leaseMs"] + 1

def step(s, e):
    s = dict(s); acts = []; now = e["now"]; t = e["type"]
    active = not s["stopped"] and s["suspendedUntil"] is None
    def sync():
        if s["safeMode"]: acts.append("safe_mode_ended")
        s["lastSyncAt"] = now; s["safeMode"] = False
    if t == "start" and active:
        s["nextPulseAt"] = now; s["nextPollAt"] = now + poll_delay(s["intervalMs"], e["random"])
    elif t == "pulse_started" and not s["stopped"]:
        acts.append("pulse"); s["nextPulseAt"] = None
    elif t == "pulse_done" and not s["stopped"]:
        s["failures"] = 0 if e["delivered"] else s["failures"] + 1
        d = pulse_delay(s["intervalMs"], e["random"]) if e["delivered"] else backoff(s["intervalMs"], s["leaseMs"], s["failures"], e["random"])
        s["nextPulseAt"] = now + d if active else None
    elif t == "poll_due":
        if not active: s["nextPollAt"] = None
        elif (s["lastSyncAt"] is not None and now - s["lastSyncAt"] < s["intervalMs"]) or not e["authenticated"]:
            s["nextPollAt"] = now + poll_delay(s["intervalMs"], e["random"])
        else:
            acts.append("poll"); s["nextPollAt"] = None
    elif t == "poll_done":
        s["nextPollAt"] = now + poll_delay(s["intervalMs"], e["random"]) if active else None
    elif t == "policy":
        p = e["policy"]
        if e["source"] == "poll" and s["policyIssuedAt"] is not None and "issuedAt" in p and p["issuedAt"] < s["policyIssuedAt"]:
            acts.append("confirm"); sync()
        else:
            pc = pacing(p); acts.append("install")
            if pc["intervalMs"] is not None: s["intervalMs"] = pc["intervalMs"]
            s["leaseMs"] = pc["leaseSeconds"] * 1000; s["policyIssuedAt"] = p.get("issuedAt")
            sync()
            if pc["standDownMs"] is not None:
                s["suspendedUntil"] = now + pc["standDownMs"]; s["nextPulseAt"] = s["nextPollAt"] = None; acts.append("stand_down")
    elif t == "not_modified":
        acts.append("confirm"); sync()
    elif t == "lease_check":
        at = lease_check_at(s)
        if at is not None and now >= at: acts.append("safe_mode_entered"); s["safeMode"] = True
    elif t == "resume":
        if not s["stopped"] and s["suspendedUntil"] is not None and now >= s["suspendedUntil"]:
            acts.append("resumed"); s["suspendedUntil"] = None
            s["nextPulseAt"] = now; s["nextPollAt"] = now + poll_delay(s["intervalMs"], e["random"])
    elif t == "stop":
        s["stopped"] = True; s["nextPulseAt"] = s["nextPollAt"] = None
    return s, acts

def due(s, now):
    lc = lease_check_at(s)
    resume_at = None if s["stopped"] else s["suspendedUntil"]
    times = [x for x in (resume_at, s["nextPulseAt"], s["nextPollAt"], lc) if x is not None]
    return {"resume": resume_at is not None and now >= resume_at, "pulse": s["nextPulseAt"] is not None and now >= s["nextPulseAt"],
            "poll": s["nextPollAt"] is not None and now >= s["nextPollAt"], "leaseCheck": lc is not None and now >= lc,
            "wakeAt": min(times) if times else None}

def step_token(s, e):
    s = dict(s); now = e["now"]; t = e["type"]
    if t == "token_start": s["refreshAt"] = now
    elif t == "token_issued": s = {"expiresAt": e["expiresAt"], "failures": 0, "refreshAt": now + refresh_delay(e["expiresAt"], now)}
    elif t == "token_failed": s["failures"] += 1; s["refreshAt"] = now + retry_delay(s["failures"], e["random"])
    elif t == "token_rejected": s["expiresAt"] = 0; s["refreshAt"] = now
    return s

bad = 0
def check(where, got, want):
    global bad
    if got != want: bad += 1; print(f"MISMATCH {where}: expected {want!r}, got {got!r}")
for c in V["functions"]:
    check(c["name"], FUNCTIONS[c["fn"]](c["args"]), c["expect"])
for c in V["client"]:
    s = {**initial(c["pulseIntervalMs"]), **c.get("state", {})}
    for i, st in enumerate(c["steps"]):
        if "event" in st:
            s, acts = step(s, st["event"])
            check(f'{c["name"]} #{i} actions', acts, st["expect"]["actions"])
            for k, v in st["expect"].get("state", {}).items(): check(f'{c["name"]} #{i} {k}', s[k], v)
        else:
            d = due(s, st["due"])
            for k, v in st["expect"].items(): check(f'{c["name"]} #{i} due {k}', d[k], v)
for c in V["token"]:
    s = c.get("state", {"expiresAt": 0, "failures": 0, "refreshAt": None})
    for i, st in enumerate(c["steps"]):
        if "event" in st:
            s = step_token(s, st["event"])
            for k, v in st["expect"]["state"].items(): check(f'{c["name"]} #{i} {k}', s[k], v)
            for now, usable in st["expect"].get("usable", []): check(f'{c["name"]} #{i} usable@{now}', now < s["expiresAt"], usable)
        else:
            check(f'{c["name"]} #{i} due', s["refreshAt"] is not None and st["due"] >= s["refreshAt"], st["expect"])
n = len(V["functions"]) + sum(len(c["steps"]) for c in V["client"] + V["token"])
print(f"{n} expectations checked, {bad} mismatches")
