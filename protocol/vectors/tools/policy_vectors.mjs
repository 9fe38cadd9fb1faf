// Writes protocol/vectors/policy.json. Every expectation below is written by
// hand from the rules in protocol/vectors/README.md ("policy.json"); nothing is
// computed by a validator under test. The script only spares the file's large
// tag maps from being typed out. Run: node protocol/vectors/tools/policy_vectors.mjs
import { writeFileSync } from "node:fs";

const DEFAULTS = {
  version: 0,
  globalMaxWeight: null,
  tagMaxWeights: {},
  killSignal: false,
  status: "ok",
  pulseInterval: 5000,
  leaseDurationSeconds: 60,
};
const valid = (name, input, policy) => ({ name, input, valid: true, policy: { ...DEFAULTS, ...policy } });
const invalid = (name, input, path) => ({ name, input, valid: false, path });
const tags = (n, value = 1) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`tag-${String(i).padStart(4, "0")}`, value]));
const FULL = {
  version: 42,
  globalMaxWeight: 10,
  tagMaxWeights: { free: 0, pro: 5, internal: null },
  killSignal: false,
  status: "over_limit",
  pulseInterval: 2000,
  leaseDurationSeconds: 120,
  issuedAt: 1740000000000,
};
const long = "x".repeat(129);
const rocket = "\u{1F680}";
// An object literal would make "__proto__" a prototype; JSON.parse keeps it an own key, as on the wire.
const protoNames = JSON.parse('{"__proto__": 0, "constructor": 1, "toString": 0, "hasOwnProperty": null, "valueOf": 2.5}');

const cases = [
  valid("an empty object: every field takes its default", {}, {}),
  valid("a full policy as the control plane publishes it", FULL, FULL),
  valid("unknown fields are dropped", { version: 3, rolloutPercent: 50, extra: { nested: true } }, { version: 3 }),
  valid("null limits are unlimited", { globalMaxWeight: null, tagMaxWeights: { free: null } }, { tagMaxWeights: { free: null } }),
  valid(
    "limits may be fractional, and zero",
    { globalMaxWeight: 2.5, tagMaxWeights: { free: 0, pro: 0.5 } },
    { globalMaxWeight: 2.5, tagMaxWeights: { free: 0, pro: 0.5 } },
  ),
  valid("tag names equal to Object.prototype members are ordinary tags", { tagMaxWeights: protoNames }, { tagMaxWeights: protoNames }),
  valid("a tag name of exactly 128 characters", { tagMaxWeights: { ["x".repeat(128)]: 1 } }, { tagMaxWeights: { ["x".repeat(128)]: 1 } }),
  valid(
    "a tag name of 64 astral characters is 128 UTF-16 units",
    { tagMaxWeights: { [rocket.repeat(64)]: 1 } },
    { tagMaxWeights: { [rocket.repeat(64)]: 1 } },
  ),
  valid(
    "tag names that look like numbers or hold dots and spaces",
    { tagMaxWeights: { 123: 1, "a.b": 2, " ": 3 } },
    { tagMaxWeights: { 123: 1, "a.b": 2, " ": 3 } },
  ),
  valid("4096 tag entries: the bound (MAX_TAGS_PER_POLICY)", { tagMaxWeights: tags(4096) }, { tagMaxWeights: tags(4096) }),
  valid("the kill switch on", { killSignal: true }, { killSignal: true }),
  valid("status cap_exceeded", { status: "cap_exceeded" }, { status: "cap_exceeded" }),
  valid(
    "status suspended with retryAfterSeconds",
    { status: "suspended", retryAfterSeconds: 3600 },
    { status: "suspended", retryAfterSeconds: 3600 },
  ),
  valid(
    "retryAfterSeconds at its maximum, 31 days",
    { status: "suspended", retryAfterSeconds: 2678400 },
    { status: "suspended", retryAfterSeconds: 2678400 },
  ),
  valid("pulseInterval at its minimum, 100 ms", { pulseInterval: 100 }, { pulseInterval: 100 }),
  valid("pulseInterval at its maximum, one hour", { pulseInterval: 3600000 }, { pulseInterval: 3600000 }),
  valid("leaseDurationSeconds at its minimum, 1 s", { leaseDurationSeconds: 1 }, { leaseDurationSeconds: 1 }),
  valid("leaseDurationSeconds at its maximum, one day", { leaseDurationSeconds: 86400 }, { leaseDurationSeconds: 86400 }),
  valid(
    "version and issuedAt at 2^53 - 1",
    { version: 9007199254740991, issuedAt: 9007199254740991 },
    { version: 9007199254740991, issuedAt: 9007199254740991 },
  ),

  invalid("the root is an array", [], "(root)"),
  invalid("the root is null", null, "(root)"),
  invalid("the root is a string", "policy", "(root)"),
  invalid("the root is a number", 1, "(root)"),
  invalid("version negative", { version: -1 }, "version"),
  invalid("version fractional", { version: 1.5 }, "version"),
  invalid("version above 2^53 - 1", { version: 9007199254740992 }, "version"),
  invalid("version a string", { version: "1" }, "version"),
  invalid("version null (null is not absent)", { version: null }, "version"),
  invalid("globalMaxWeight negative", { globalMaxWeight: -1 }, "globalMaxWeight"),
  invalid("globalMaxWeight the string NaN", { globalMaxWeight: "NaN" }, "globalMaxWeight"),
  invalid("globalMaxWeight the string Infinity", { globalMaxWeight: "Infinity" }, "globalMaxWeight"),
  invalid("globalMaxWeight a boolean", { globalMaxWeight: true }, "globalMaxWeight"),
  invalid("tagMaxWeights an array", { tagMaxWeights: [] }, "tagMaxWeights"),
  invalid("tagMaxWeights null", { tagMaxWeights: null }, "tagMaxWeights"),
  invalid("tagMaxWeights a string", { tagMaxWeights: "free" }, "tagMaxWeights"),
  invalid("a tag limit negative", { tagMaxWeights: { free: -1 } }, "tagMaxWeights.free"),
  invalid("a tag limit slightly negative", { tagMaxWeights: { free: -0.5 } }, "tagMaxWeights.free"),
  invalid("a tag limit the string NaN", { tagMaxWeights: { free: "NaN" } }, "tagMaxWeights.free"),
  invalid("a tag limit the string -Infinity", { tagMaxWeights: { free: "-Infinity" } }, "tagMaxWeights.free"),
  invalid("a tag limit a boolean", { tagMaxWeights: { free: false } }, "tagMaxWeights.free"),
  invalid("a tag limit an object", { tagMaxWeights: { free: {} } }, "tagMaxWeights.free"),
  invalid(
    "a __proto__ tag with a negative limit is refused by name",
    { tagMaxWeights: JSON.parse('{"__proto__": -1}') },
    "tagMaxWeights.__proto__",
  ),
  invalid("an empty tag name", { tagMaxWeights: { "": 1 } }, "tagMaxWeights."),
  invalid("a tag name of 129 characters", { tagMaxWeights: { [long]: 1 } }, `tagMaxWeights.${long}`),
  invalid(
    "a tag name of 65 astral characters is 130 UTF-16 units",
    { tagMaxWeights: { [rocket.repeat(65)]: 1 } },
    `tagMaxWeights.${rocket.repeat(65)}`,
  ),
  invalid("4097 tag entries: one past the bound", { tagMaxWeights: tags(4097) }, "tagMaxWeights"),
  invalid(
    "4097 tag entries with the kill switch on (an SDK still enforces kill_signal)",
    { version: 9, killSignal: true, tagMaxWeights: tags(4097, null), pulseInterval: 2000, leaseDurationSeconds: 120 },
    "tagMaxWeights",
  ),
  invalid(
    "a fractional lease with the kill switch on (an SDK still enforces kill_signal)",
    { killSignal: true, leaseDurationSeconds: 0.5 },
    "leaseDurationSeconds",
  ),
  invalid("killSignal the string true", { killSignal: "true" }, "killSignal"),
  invalid("killSignal the number 1", { killSignal: 1 }, "killSignal"),
  invalid("status unknown", { status: "paused" }, "status"),
  invalid("status in another case", { status: "OK" }, "status"),
  invalid("status named like a prototype member", { status: "toString" }, "status"),
  invalid("status null", { status: null }, "status"),
  invalid("pulseInterval below 100 ms", { pulseInterval: 99 }, "pulseInterval"),
  invalid("pulseInterval above one hour", { pulseInterval: 3600001 }, "pulseInterval"),
  invalid("pulseInterval fractional", { pulseInterval: 1000.5 }, "pulseInterval"),
  invalid("pulseInterval zero", { pulseInterval: 0 }, "pulseInterval"),
  invalid("pulseInterval a string", { pulseInterval: "2000" }, "pulseInterval"),
  invalid("leaseDurationSeconds fractional", { leaseDurationSeconds: 0.5 }, "leaseDurationSeconds"),
  invalid("leaseDurationSeconds zero", { leaseDurationSeconds: 0 }, "leaseDurationSeconds"),
  invalid("leaseDurationSeconds negative", { leaseDurationSeconds: -60 }, "leaseDurationSeconds"),
  invalid("leaseDurationSeconds above one day", { leaseDurationSeconds: 86401 }, "leaseDurationSeconds"),
  invalid("leaseDurationSeconds a string", { leaseDurationSeconds: "60" }, "leaseDurationSeconds"),
  invalid("issuedAt negative", { issuedAt: -1 }, "issuedAt"),
  invalid("issuedAt fractional", { issuedAt: 1740000000000.5 }, "issuedAt"),
  invalid("issuedAt a date string", { issuedAt: "2026-01-01T00:00:00Z" }, "issuedAt"),
  invalid("suspended with retryAfterSeconds zero", { status: "suspended", retryAfterSeconds: 0 }, "retryAfterSeconds"),
  invalid("suspended with retryAfterSeconds over 31 days", { status: "suspended", retryAfterSeconds: 2678401 }, "retryAfterSeconds"),
  invalid("suspended with retryAfterSeconds fractional", { status: "suspended", retryAfterSeconds: 1.5 }, "retryAfterSeconds"),
  invalid(
    "two faults: the first in field order is named, not the first in the input",
    { leaseDurationSeconds: 0.5, version: -1 },
    "version",
  ),
  invalid("two faults: a bad tag entry comes before a bad status", { status: "paused", tagMaxWeights: { free: -1 } }, "tagMaxWeights.free"),
  invalid("two faults: 4097 entries come before a bad pulseInterval", { pulseInterval: 1, tagMaxWeights: tags(4097) }, "tagMaxWeights"),
];

const file = {
  description:
    'Policy validation (protocol/vectors/README.md, "policy.json"): each input is a policy as received; valid ones give the normalized policy, invalid ones the first field at fault in field order.',
  cases,
};
// One case per line: the large tag maps stay out of the way of a reader and of a diff.
const text = `{\n "description": ${JSON.stringify(file.description)},\n "cases": [\n${cases.map((c) => `  ${JSON.stringify(c)}`).join(",\n")}\n ]\n}\n`;
JSON.parse(text);
writeFileSync(new URL("../policy.json", import.meta.url), text);
console.log(`wrote protocol/vectors/policy.json: ${cases.length} cases`);
