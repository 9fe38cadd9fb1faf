/**
 * The push channel: the SDK's own RFC 6455 client against a real WebSocket
 * server written here over node:http `upgrade` (framing, faults, close
 * codes), and WaitState against the stand-in control plane's subscribe route
 * (a pushed policy in force at once, version order, no lease restart,
 * reconnects, token exchange on 4001/4002, shutdown).
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { WaitStateError, WaitStateOptions } from "../src/index.js";
import { PushSubscriber, pushBackoffMs, type PushedPolicy } from "../src/push.js";
import { connectWebSocket, type WebSocketConnection } from "../src/websocket.js";
import { startControlPlane, pushMessage, type FakeControlPlane } from "./support/control-plane.js";
import { clientOf, eventually, sleep, type TestClient } from "./support/client.js";
import { acceptHandshake, encodeFrame, refuseUpgrade, ServerSocket } from "./support/ws-server.js";

// ---------------------------------------------------------------- a bare WebSocket server

interface Bare {
  url: string;
  sockets: ServerSocket[];
  /** How the next upgrade is answered; default: accepted. */
  onUpgrade: (req: IncomingMessage, socket: Duplex) => ServerSocket | null;
  close(): Promise<void>;
}

const servers: Server[] = [];
/** Every TCP connection of the bare servers: upgraded sockets leave the server's bookkeeping, so the tests end them. */
const tcp = new Set<Duplex>();
async function bareServer(): Promise<Bare> {
  const bare: Bare = {
    url: "",
    sockets: [],
    onUpgrade: (req, socket) => (acceptHandshake(req, socket) ? new ServerSocket(socket, req) : null),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const server = createServer((_req, res) => res.writeHead(426).end());
  server.on("connection", (socket) => {
    tcp.add(socket);
    socket.on("close", () => tcp.delete(socket));
  });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex) => {
    const accepted = bare.onUpgrade(req, socket);
    if (accepted) bare.sockets.push(accepted);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  bare.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/socket`;
  servers.push(server);
  return bare;
}

interface Seen {
  texts: string[];
  binaries: Buffer[];
  closes: Array<{ code: number; reason: string; byPeer: boolean }>;
}

async function open(bare: Bare, maxMessageBytes?: number): Promise<{ ws: WebSocketConnection; server: ServerSocket; seen: Seen }> {
  const seen: Seen = { texts: [], binaries: [], closes: [] };
  const outcome = await connectWebSocket(bare.url, {
    headers: { authorization: "Bearer t0ken" },
    timeoutMs: 2000,
    ...(maxMessageBytes !== undefined ? { maxMessageBytes } : {}),
    handlers: {
      onText: (t) => seen.texts.push(t),
      onBinary: (b) => seen.binaries.push(b),
      onClose: (code, reason, byPeer) => seen.closes.push({ code, reason, byPeer }),
    },
  });
  if (!outcome.ok) throw new Error(`not connected: ${outcome.reason}`);
  await eventually(() => bare.sockets.length > 0, 2000, "the server side");
  return { ws: outcome.connection, server: bare.sockets.at(-1)!, seen };
}

afterEach(async () => {
  for (const socket of tcp) socket.destroy();
  for (const server of servers.splice(0)) await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe("the WebSocket client (RFC 6455)", () => {
  it("performs the handshake with the Authorization header and sends masked text frames", async () => {
    const bare = await bareServer();
    const { ws, server } = await open(bare);
    expect(server.request.headers.authorization).toBe("Bearer t0ken");
    expect(server.request.headers["sec-websocket-version"]).toBe("13");
    ws.send("héllo");
    await server.waitFor(() => server.texts.length === 1);
    expect(server.texts).toEqual(["héllo"]);
    expect(server.frames[0]).toMatchObject({ fin: true, opcode: 1, masked: true });
    ws.close();
  });

  it("refuses a server whose Sec-WebSocket-Accept does not match the key", async () => {
    const bare = await bareServer();
    bare.onUpgrade = (_req, socket) => {
      socket.write(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm9wZQ==\r\n\r\n",
      );
      return null;
    };
    const outcome = await connectWebSocket(bare.url, { timeoutMs: 2000, handlers: {} });
    expect(outcome).toMatchObject({ ok: false, status: 101, reason: expect.stringContaining("Sec-WebSocket-Accept") });
  });

  it("turns a refused upgrade into its status and error body", async () => {
    const bare = await bareServer();
    bare.onUpgrade = (_req, socket) => {
      refuseUpgrade(socket, 403, "FORBIDDEN", "another org");
      return null;
    };
    const outcome = await connectWebSocket(bare.url, { timeoutMs: 2000, handlers: {} });
    expect(outcome).toMatchObject({ ok: false, status: 403 });
    expect(!outcome.ok && JSON.parse(outcome.body)).toEqual({ error: { code: "FORBIDDEN", message: "another org" } });
  });

  it("reports a connection refused as a value, never a rejection", async () => {
    const bare = await bareServer();
    await bare.close();
    const outcome = await connectWebSocket(bare.url, { timeoutMs: 2000, handlers: {} });
    expect(outcome).toMatchObject({ ok: false, status: 0, reason: expect.stringContaining("ECONNREFUSED") });
  });

  it("reads the three length encodings, fragmented messages with a ping between the fragments, and binary", async () => {
    const bare = await bareServer();
    const { ws, server, seen } = await open(bare);
    const medium = "m".repeat(1000);
    const large = "L".repeat(70_000);
    server.sendText("short");
    server.sendText(medium);
    server.sendText(large);
    // "frag" + "ment" + "ed", a ping in the middle (answered with its payload), bytes split across writes
    const parts = Buffer.concat([
      encodeFrame(0x1, "frag", { fin: false }),
      encodeFrame(0x9, "p1"),
      encodeFrame(0x0, "ment", { fin: false }),
      encodeFrame(0x0, "ed", { fin: true }),
    ]);
    for (let i = 0; i < parts.length; i += 3) server.raw(parts.subarray(i, i + 3));
    server.raw(encodeFrame(0x2, Buffer.from([1, 2, 3])));
    await eventually(() => seen.binaries.length === 1, 2000, "every message");
    expect(seen.texts).toEqual(["short", medium, large, "fragmented"]);
    expect(seen.binaries[0]).toEqual(Buffer.from([1, 2, 3]));
    await server.waitFor(() => server.frames.some((f) => f.opcode === 0xa));
    const pong = server.frames.find((f) => f.opcode === 0xa)!;
    expect(pong).toMatchObject({ masked: true });
    expect(pong.payload.toString()).toBe("p1");
    expect(seen.closes).toEqual([]);
    ws.close();
  });

  it.each([
    ["a masked server frame", 1002, () => encodeFrame(0x1, "x", { mask: true })],
    ["reserved bits without an extension", 1002, () => encodeFrame(0x1, "x", { rsv: 4 })],
    ["an unknown opcode", 1002, () => encodeFrame(0x3, "x")],
    ["a continuation without a message", 1002, () => encodeFrame(0x0, "x")],
    ["a fragmented ping", 1002, () => encodeFrame(0x9, "x", { fin: false })],
    ["a text message that is not UTF-8", 1007, () => encodeFrame(0x1, Buffer.from([0xc3, 0x28]))],
    ["a frame declaring more than the maximum", 1009, () => encodeFrame(0x1, Buffer.alloc(0), { declaredLength: 5000 })],
    [
      "fragments adding up to more than the maximum",
      1009,
      () => Buffer.concat([encodeFrame(0x1, "a".repeat(800), { fin: false }), encodeFrame(0x0, "b".repeat(800))]),
    ],
  ])("fails the connection on %s with close code %i", async (_what, code, frame) => {
    const bare = await bareServer();
    const { server, seen } = await open(bare, 1024);
    server.raw(frame());
    await server.waitFor(() => server.clientClose !== null, 2000, "the client's close");
    expect(server.clientClose).toBe(code);
    expect(seen.closes).toEqual([expect.objectContaining({ code, byPeer: false })]);
    expect(seen.texts).toEqual([]);
  });

  it("answers the server's close with the same code and reports code and reason", async () => {
    const bare = await bareServer();
    const { server, seen } = await open(bare);
    server.close(4002, "TOKEN_EXPIRED");
    await eventually(() => seen.closes.length === 1, 2000, "the close");
    expect(seen.closes).toEqual([{ code: 4002, reason: "TOKEN_EXPIRED", byPeer: true }]);
    await server.waitFor(() => server.clientClose !== null);
    expect(server.clientClose).toBe(4002);
  });

  it("reports a dropped TCP connection as 1006", async () => {
    const bare = await bareServer();
    const { server, seen } = await open(bare);
    server.destroy();
    await eventually(() => seen.closes.length === 1, 2000, "the close");
    expect(seen.closes).toEqual([{ code: 1006, reason: "", byPeer: false }]);
  });
});

// ---------------------------------------------------------------- the subscriber's pure parts

describe("reconnect backoff", () => {
  it.each([
    [1, 0, 0],
    [1, 0.5, 500],
    [2, 0.5, 1000],
    [3, 0.999, 3996],
    [6, 0.5, 16_000],
    [7, 0.5, 30_000], // 64 s capped at 60 s
    [40, 0.999, 59_940],
  ])("attempt %i with draw %f waits %i ms (full jitter over 1 s doubling, at most 60 s)", (failures, random, ms) => {
    expect(pushBackoffMs(failures, random)).toBe(ms);
  });
});

describe("PushSubscriber", () => {
  function subscriber(bare: Bare, extra: { keepAliveMs?: number } = {}) {
    const policies: PushedPolicy[] = [];
    const errors: WaitStateError[] = [];
    let invalidated = 0;
    const sub = new PushSubscriber({
      baseUrl: bare.url.replace(/\/socket$/, ""),
      siteId: "site-a",
      auth: { orgId: "org_1", validToken: () => "tok", invalidate: () => void invalidated++ },
      timeoutMs: 2000,
      onPolicy: (m) => policies.push(m),
      onError: (e) => errors.push(e),
      random: () => 0,
      backoffMinMs: 10,
      ...extra,
    });
    return { sub, policies, errors, invalidated: () => invalidated };
  }

  it("subscribes to the org's site with the token, hands over policy messages and ignores unknown types", async () => {
    const bare = await bareServer();
    const { sub, policies, errors } = subscriber(bare);
    sub.tokenReady();
    await eventually(() => sub.connected, 2000, "connected");
    const server = bare.sockets[0]!;
    expect(server.request.url).toBe("/v1/policy/org_1/subscribe?siteId=site-a");
    expect(server.token).toBe("tok");
    server.sendJson({ type: "policy", version: 3, etag: '"e-3"', policy: { version: 3 } });
    server.sendJson({ type: "rule_fired", version: 9 });
    server.sendText("pong");
    server.sendJson({ type: "policy", version: 4, policy: { version: 4 } });
    await eventually(() => policies.length === 2, 2000, "two policies");
    expect(policies).toEqual([
      { version: 3, etag: '"e-3"', policy: { version: 3 } },
      { version: 4, etag: null, policy: { version: 4 } },
    ]);
    expect(errors).toEqual([]);
    sub.stop();
    await server.waitFor(() => server.clientClose !== null);
    expect(server.clientClose).toBe(1000);
  });

  it.each([
    ["text that is not JSON", (s: ServerSocket) => s.sendText("{nope"), /not JSON/],
    ["a JSON array", (s: ServerSocket) => s.sendJson([1]), /not a JSON object/],
    ["a policy message without a version", (s: ServerSocket) => s.sendJson({ type: "policy", policy: {} }), /integer version/],
    ["a negative version", (s: ServerSocket) => s.sendJson({ type: "policy", version: -1, policy: {} }), /integer version/],
    ["a binary message", (s: ServerSocket) => s.raw(encodeFrame(0x2, Buffer.from("{}"))), /binary/],
  ])("reports %s as INVALID_POLICY and keeps the connection", async (_what, send, message) => {
    const bare = await bareServer();
    const { sub, policies, errors } = subscriber(bare);
    sub.tokenReady();
    await eventually(() => sub.connected, 2000, "connected");
    send(bare.sockets[0]!);
    await eventually(() => errors.length === 1, 2000, "the report");
    expect(errors[0]).toMatchObject({ code: "INVALID_POLICY", message: expect.stringMatching(message) });
    expect(policies).toEqual([]);
    expect(sub.connected).toBe(true);
    sub.stop();
  });

  it("keeps reconnecting at backoff pace while the upgrade is refused, and invalidates the token on 401", async () => {
    const bare = await bareServer();
    let refusals = 0;
    bare.onUpgrade = (_req, socket) => {
      refusals++;
      refuseUpgrade(socket, refusals === 1 ? 401 : 503, refusals === 1 ? "INVALID_TOKEN" : "UNAVAILABLE");
      return null;
    };
    const { sub, errors, invalidated } = subscriber(bare);
    sub.tokenReady();
    await eventually(() => refusals >= 4, 5000, "four attempts");
    bare.onUpgrade = (req, socket) => (acceptHandshake(req, socket) ? new ServerSocket(socket, req) : null);
    await eventually(() => sub.connected, 5000, "connected at last");
    sub.stop();
    expect(invalidated()).toBe(1);
    expect(errors.slice(0, 2).map((e) => [e.code, e.status])).toEqual([
      ["PUSH_FAILED", 401],
      ["PUSH_FAILED", 503],
    ]);
    expect(errors[0]!.message).toContain("401 INVALID_TOKEN");
  });

  it("sends a text ping as keep-alive and drops a connection whose pong never comes", async () => {
    const bare = await bareServer();
    let accepted = 0;
    bare.onUpgrade = (req, socket) => {
      accepted++;
      // the first server never answers pings: a half-open connection as the client sees it
      return acceptHandshake(req, socket) ? new ServerSocket(socket, req, accepted > 1) : null;
    };
    const { sub, errors } = subscriber(bare, { keepAliveMs: 100 });
    sub.tokenReady();
    await eventually(() => accepted === 2 && sub.connected, 3000, "a second connection");
    expect(bare.sockets[0]!.texts[0]).toBe("ping");
    expect(errors[0]).toMatchObject({ code: "PUSH_FAILED", message: expect.stringContaining("no answer to a ping") });
    const second = bare.sockets[1]!;
    await second.waitFor(() => second.texts.length >= 3, 3000, "pings answered");
    expect(sub.connected).toBe(true);
    sub.stop();
  });
});

// ---------------------------------------------------------------- WaitState with push

describe("WaitState: policies by push", () => {
  let cp: FakeControlPlane;
  const clients: TestClient[] = [];
  function client(extra: Partial<WaitStateOptions> = {}): TestClient {
    const c = clientOf(cp, extra);
    clients.push(c);
    return c;
  }
  /** A client synced by its first pulse with the push channel open; pulses then 60 s apart. */
  async function connected(extra: Partial<WaitStateOptions> = {}): Promise<TestClient> {
    const c = client(extra);
    expect(await c.ws.ready(2000)).toBe(true);
    await eventually(() => c.ws.status().pushConnected, 3000, "the push channel");
    return c;
  }

  beforeEach(async () => {
    cp = await startControlPlane({ pulseInterval: 60_000, leaseDurationSeconds: 300 });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.ws.shutdown()));
    await cp.stop();
  });

  it("enforces a pushed kill switch at once, with no pulse or policy read, and remembers the ETag", async () => {
    const { ws, errors } = await connected();
    const requests = cp.requests.length;
    const lastSyncAt = ws.status().lastSyncAt;
    expect(ws.gate("free")).toEqual({ allowed: true, reason: "allowed" });
    cp.setPolicy({ killSignal: true });
    await eventually(() => ws.gate("free").reason === "kill_signal", 2000, "the kill switch");
    expect(cp.requests.length).toBe(requests);
    expect(ws.status()).toMatchObject({ policyVersion: 2, lastSyncAt });
    expect((ws as unknown as { cache: { etag: string } }).cache.etag).toBe('"2"');
    expect(errors).toEqual([]);
  });

  it("versions never go backwards: an older or equal push is ignored", async () => {
    const { ws, errors } = await connected();
    cp.autoPush = false;
    const v1 = cp.policy;
    const v2 = { ...v1, version: 2, tagMaxWeights: { free: 0 }, issuedAt: Date.now() };
    cp.pushPolicy(v2);
    await eventually(() => ws.status().policyVersion === 2, 2000, "v2 pushed");
    cp.pushPolicy({ ...v1, globalMaxWeight: 0 }); // v1 again, blocking everything
    cp.pushPolicy({ ...v2, tagMaxWeights: {} }); // v2 again, unblocking free
    await sleep(200);
    expect(ws.gate("free").reason).toBe("tag_blocked");
    expect(ws.gate("pro").reason).toBe("allowed");
    cp.pushPolicy({ ...v2, version: 3, killSignal: true });
    await eventually(() => ws.status().policyVersion === 3, 2000, "v3 pushed");
    expect(ws.gate("pro").reason).toBe("kill_signal");
    expect(errors).toEqual([]);
  });

  it("a pulse answer issued before a push that overtook it confirms the sync without rolling the policy back", async () => {
    cp.policy = { ...cp.policy, pulseInterval: 100 };
    const { ws, errors } = await connected();
    cp.autoPush = false;
    cp.pushPolicy({ ...cp.policy, version: 2, killSignal: true, issuedAt: Date.now() });
    await eventually(() => ws.status().policyVersion === 2, 2000, "v2 pushed");
    // The control plane's pulses still answer v1: synced, but v2 stays in force.
    const synced = ws.status().lastSyncAt!;
    await cp.nextPulses(2);
    await eventually(() => ws.status().lastSyncAt! > synced, 2000, "a sync");
    expect(ws.status().policyVersion).toBe(2);
    expect(ws.gate("pro").reason).toBe("kill_signal");
    // A newer policy from a pulse is installed as usual.
    cp.setPolicy({});
    cp.setPolicy({ tagMaxWeights: { free: 0 } });
    await eventually(() => ws.status().policyVersion === 3, 2000, "v3 by pulse");
    expect(ws.gate("pro").reason).toBe("allowed");
    expect(ws.gate("free").reason).toBe("tag_blocked");
    expect(errors).toEqual([]);
  });

  it("a push does not restart the lease: with pulses and reads failing, safe mode comes on time, pushes or not", async () => {
    cp.policy = { ...cp.policy, pulseInterval: 200, leaseDurationSeconds: 2 };
    const { ws, errors } = await connected({ safeModeStrategy: "last_policy" });
    // pulses and reads refused from now on; the push channel stays up
    cp.pulseFailStatus = 503;
    cp.fault = "error500";
    await sleep(300);
    const syncedAt = ws.status().lastSyncAt!;
    const block = (free: number) => cp.pushPolicy({ ...cp.policy, version: cp.policy.version + free, tagMaxWeights: { free: 0 } });
    block(1);
    await eventually(() => ws.gate("free").reason === "tag_blocked", 2000, "the pushed block");
    // keep pushing newer policies while the lease runs out
    for (let i = 2; !ws.status().safeMode && i < 60; i++) {
      block(i);
      await sleep(100);
    }
    expect(ws.status().safeMode).toBe(true);
    expect(ws.status().lastSyncAt).toBe(syncedAt);
    // last_policy enforces the pushed policy, under lease_expired
    expect(ws.gate("free")).toEqual({ allowed: false, reason: "lease_expired" });
    expect(errors.map((e) => e.code)).toContain("SAFE_MODE");
  });

  it("an invalid pushed policy is ignored and reported; one carrying the kill switch is honoured", async () => {
    const { ws, errors } = await connected();
    cp.pushPolicy({ ...cp.policy, version: 5, globalMaxWeight: "lots" as unknown as number });
    await eventually(() => errors.length === 1, 2000, "the report");
    expect(errors[0]).toMatchObject({ code: "INVALID_POLICY", message: expect.stringContaining("pushed policy") });
    expect(ws.status().policyVersion).toBe(1);
    expect(ws.gate("free").allowed).toBe(true);
    cp.pushPolicy({ ...cp.policy, version: 6, killSignal: true, status: "bogus" as "ok" });
    await eventually(() => ws.gate("free").reason === "kill_signal", 2000, "the salvaged kill switch");
    expect(errors[1]).toMatchObject({ code: "INVALID_POLICY", message: expect.stringContaining("kill switch, which is honoured") });
    expect(ws.status().policyVersion).toBe(6);
  });

  it("reconnects after the connection drops and resyncs from the first message: a change missed meanwhile arrives", async () => {
    const { ws, errors } = await connected();
    cp.autoPush = false;
    cp.openSubscribers()[0]!.destroy();
    cp.setPolicy({ tagMaxWeights: { free: 0 } }); // nobody is subscribed to hear it
    await eventually(() => cp.subscribers.length === 2, 4000, "the reconnect");
    await eventually(() => ws.gate("free").reason === "tag_blocked", 2000, "the resync");
    expect(errors.map((e) => e.code)).toEqual(["PUSH_FAILED"]);
  });

  it.each([
    [4001, "KEY_REVOKED", true],
    [4002, "TOKEN_EXPIRED", false],
  ])("close %i %s: exchanges a new token first, reconnects with it (reported: %s)", async (code, reason, reported) => {
    const { ws, errors } = await connected();
    const tokens = cp.tokensIssued.length;
    cp.openSubscribers()[0]!.close(code, reason);
    await eventually(() => cp.subscribers.length === 2 && ws.status().pushConnected, 4000, "the reconnect");
    expect(cp.tokensIssued.length).toBe(tokens + 1);
    expect(cp.subscribers[1]!.token).toBe(cp.tokensIssued.at(-1));
    expect(cp.subscribers[1]!.token).not.toBe(cp.subscribers[0]!.token);
    if (reported)
      expect(errors).toEqual([
        expect.objectContaining({ code: "PUSH_FAILED", status: 401, message: expect.stringContaining(`${code} ${reason}`) }),
      ]);
    else expect(errors).toEqual([]);
  });

  it("close 1008 FLOODING: reported, reconnects with the same token", async () => {
    const { ws, errors } = await connected();
    const tokens = cp.tokensIssued.length;
    cp.openSubscribers()[0]!.close(1008, "FLOODING");
    await eventually(() => cp.subscribers.length === 2 && ws.status().pushConnected, 4000, "the reconnect");
    expect(cp.tokensIssued.length).toBe(tokens);
    expect(errors).toEqual([expect.objectContaining({ code: "PUSH_FAILED", message: expect.stringContaining("1008 FLOODING") })]);
  });

  it("a control plane without push: reported, and pulses carry on alone", async () => {
    cp.subscribeStatus = 404;
    cp.policy = { ...cp.policy, pulseInterval: 100 };
    const { ws, errors } = client({ pulseInterval: 100 });
    expect(await ws.ready(2000)).toBe(true);
    await eventually(() => errors.length > 0, 2000, "the report");
    expect(errors[0]).toMatchObject({ code: "PUSH_FAILED", status: 404 });
    cp.setPolicy({ killSignal: true });
    await eventually(() => ws.gate("free").reason === "kill_signal", 2000, "the kill switch by pulse");
    expect(ws.status().pushConnected).toBe(false);
  });

  it("push: false never opens the socket; a bad push option is refused", async () => {
    const { ws } = client({ push: false });
    expect(await ws.ready(2000)).toBe(true);
    await sleep(300);
    expect(cp.requests.filter((r) => r.startsWith("UPGRADE"))).toEqual([]);
    expect(ws.status().pushConnected).toBe(false);
    expect(() => client({ push: "yes" as unknown as boolean })).toThrow(/push must be true or false/);
  });

  it("shutdown closes the socket with 1000", async () => {
    const { ws } = await connected();
    const sub = cp.openSubscribers()[0]!;
    await ws.shutdown();
    await sub.waitFor(() => sub.clientClose !== null, 2000, "the close");
    expect(sub.clientClose).toBe(1000);
    expect(ws.status().pushConnected).toBe(false);
  });

  it("pushMessage is the contract's shape", () => {
    expect(pushMessage(cp.policy)).toEqual({ type: "policy", version: 1, etag: '"1"', policy: cp.policy });
  });
});
