/**
 * Which hosts a webhook may be delivered to. A webhook URL is chosen by any
 * management token holder, and the control plane makes the request, so an
 * address inside the network it runs in (loopback, private, link-local with
 * the cloud metadata service, CGNAT, unique-local IPv6, and IPv4 hidden in
 * IPv6) would turn webhooks into a way to reach and map that network. Such
 * targets are refused when a webhook is created or changed and again before
 * every delivery, unless the operator of a self-hosted network opts in with
 * `WEBHOOKS_ALLOW_PRIVATE_TARGETS=true`.
 *
 * The host is read as the WHATWG URL parser leaves it, which is also what
 * `fetch` connects to: every IPv4 spelling it accepts (`127.1`, `0x7f000001`,
 * `2130706433`, `0177.0.0.1`) is already a dotted quad, and IPv6 is
 * compressed hex in brackets (`[::ffff:7f00:1]`). Names are not resolved
 * here (a Worker cannot); a public name that resolves to a private address is
 * the network's egress policy to stop (on Cloudflare, Workers cannot reach
 * private networks at all).
 */

/** The environment setting that allows private targets, for self-hosted networks. */
export const ALLOW_PRIVATE_TARGETS_VAR = "WEBHOOKS_ALLOW_PRIVATE_TARGETS";

/** True only for the explicit opt-in `true` (any case); anything else keeps the default, refusing. */
export function allowsPrivateTargets(value: unknown): boolean {
  return typeof value === "string" && value.trim().toLowerCase() === "true";
}

/** IPv4 ranges that are not the public internet: [first octets as a 32-bit number, prefix length, what it is]. */
const IPV4_BLOCKED: ReadonlyArray<readonly [number, number, string]> = [
  [0x00000000, 8, 'a "this network" address (0.0.0.0/8)'],
  [0x0a000000, 8, "a private address (10.0.0.0/8)"],
  [0x64400000, 10, "a carrier-grade NAT address (100.64.0.0/10)"],
  [0x7f000000, 8, "a loopback address (127.0.0.0/8)"],
  [0xa9fe0000, 16, "a link-local address (169.254.0.0/16, the cloud metadata service)"],
  [0xac100000, 12, "a private address (172.16.0.0/12)"],
  [0xc0000000, 24, "an IETF protocol address (192.0.0.0/24)"],
  [0xc0a80000, 16, "a private address (192.168.0.0/16)"],
  [0xc6120000, 15, "a benchmarking address (198.18.0.0/15)"],
  [0xe0000000, 4, "a multicast address (224.0.0.0/4)"],
  [0xf0000000, 4, "a reserved address (240.0.0.0/4)"],
];

function ipv4Problem(address: number): string | null {
  for (const [base, bits, what] of IPV4_BLOCKED) {
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    if ((address & mask) >>> 0 === base) return what;
  }
  return null;
}

/** A dotted quad as the URL parser writes it, as a 32-bit number, or null. */
function parseIpv4(host: string): number | null {
  const parts = host.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return null;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

/** The eight 16-bit groups of a bracket-less IPv6 address (an embedded dotted quad allowed), or null. */
function parseIpv6(text: string): number[] | null {
  let head = text;
  const tail: number[] = [];
  const v4 = /^(.*:)(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  if (v4) {
    const n = parseIpv4(v4[2]!);
    if (n === null) return null;
    head = v4[1]!.endsWith("::") ? v4[1]! : v4[1]!.slice(0, -1);
    tail.push(n >>> 16, n & 0xffff);
  }
  const halves = head.split("::");
  if (halves.length > 2) return null;
  const groups = (s: string) => (s === "" ? [] : s.split(":").map((g) => (/^[0-9a-f]{1,4}$/i.test(g) ? parseInt(g, 16) : NaN)));
  const left = groups(halves[0]!);
  const right = halves.length === 2 ? groups(halves[1]!) : [];
  const missing = 8 - left.length - right.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const all = [...left, ...Array<number>(halves.length === 2 ? missing : 0).fill(0), ...right, ...tail];
  return all.length === 8 && all.every((g) => Number.isInteger(g)) ? all : null;
}

function ipv6Problem(g: number[]): string | null {
  const [a, b, c, d, e, f, h, i] = g as [number, number, number, number, number, number, number, number];
  const embedded = ((h << 16) >>> 0) + i;
  if (a === 0 && b === 0 && c === 0 && d === 0 && e === 0) {
    if (f === 0 && h === 0 && i === 0) return "the unspecified address (::)";
    if (f === 0 && h === 0 && i === 1) return "a loopback address (::1)";
    // ::ffff:a.b.c.d (IPv4-mapped) and ::a.b.c.d (IPv4-compatible) reach the IPv4 address.
    if (f === 0xffff || f === 0) {
      const inner = ipv4Problem(embedded);
      return inner === null ? null : `an IPv4 address in IPv6 form that is ${inner}`;
    }
  }
  if (a === 0x64 && b === 0xff9b && c === 0 && d === 0 && e === 0 && f === 0) {
    const inner = ipv4Problem(embedded);
    return inner === null ? null : `a NAT64 address of ${inner}`;
  }
  if (a === 0x2002) {
    const inner = ipv4Problem(((b << 16) >>> 0) + c);
    return inner === null ? null : `a 6to4 address of ${inner}`;
  }
  if ((a & 0xfe00) === 0xfc00) return "a unique-local address (fc00::/7)";
  if ((a & 0xffc0) === 0xfe80) return "a link-local address (fe80::/10)";
  if ((a & 0xffc0) === 0xfec0) return "a site-local address (fec0::/10)";
  if ((a & 0xff00) === 0xff00) return "a multicast address (ff00::/8)";
  return null;
}

/**
 * Why `hostname` (a URL's `hostname`, as parsed) is not a public webhook
 * target, or null when it is one.
 *
 * @example
 * targetProblem(new URL("http://127.1:1/").hostname) // "a loopback address (127.0.0.0/8)"
 * targetProblem("hooks.example.com")                 // null
 */
export function targetProblem(hostname: string): string | null {
  const host = hostname.toLowerCase().replace(/\.$/, "");
  if (host.startsWith("[") && host.endsWith("]")) {
    const groups = parseIpv6(host.slice(1, -1));
    return groups === null ? "an IPv6 address that cannot be read" : ipv6Problem(groups);
  }
  const v4 = parseIpv4(host);
  if (v4 !== null) return ipv4Problem(v4);
  if (host === "localhost" || host.endsWith(".localhost")) return "a loopback name (localhost)";
  if (host.endsWith(".local") || host.endsWith(".internal") || host.endsWith(".home.arpa"))
    return "a name of a local network (.local, .internal, .home.arpa)";
  if (!host.includes(".")) return "a single-label name, which resolves inside the local network";
  return null;
}

/**
 * Why `url` may not receive webhooks under this setting, or null. A URL that
 * does not parse is a problem too (the caller validated it long before).
 */
export function webhookTargetProblem(url: string, allowPrivate: boolean): string | null {
  if (allowPrivate) return null;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "not a URL";
  }
  return targetProblem(parsed.hostname);
}
