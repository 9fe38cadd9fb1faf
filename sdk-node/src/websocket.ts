/**
 * A small RFC 6455 WebSocket client over `node:http`/`node:https` upgrades:
 * what the push channel needs and nothing more. Node 20 has no global
 * WebSocket and Node 22's cannot send an `authorization` header, so the SDK
 * keeps one code path of its own on every Node version, with no dependency.
 *
 * Covered: the opening handshake (key and `Sec-WebSocket-Accept` checked),
 * masked client frames, text and binary messages, fragmentation, ping/pong,
 * the closing handshake with its codes, and a cap on message size. Not
 * covered (nothing asks for them): extensions and subprotocols; a server that
 * negotiates either is refused.
 *
 * The socket is `unref`'d: an open connection never keeps a process alive.
 */
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { Duplex } from "node:stream";

/** RFC 6455, section 1.3: appended to the key to prove the server read the handshake. */
const HANDSHAKE_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** A message (all its fragments) larger than this closes the connection with 1009. @default 1 MiB */
export const DEFAULT_MAX_MESSAGE_BYTES = 1 << 20;
/** How long a close we sent may wait for the server's before the socket is dropped. */
const CLOSE_GRACE_MS = 1000;
/** An error answer's body is read up to this size (for its `{"error":{…}}`). */
const MAX_ERROR_BODY_BYTES = 16 * 1024;

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

/** Close codes this client sends or names (RFC 6455, section 7.4.1). */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  noStatus: 1005,
  abnormal: 1006,
  invalidData: 1007,
  policyViolation: 1008,
  tooBig: 1009,
  serverError: 1011,
} as const;

export interface WebSocketHandlers {
  /** A complete text message. */
  onText?: (text: string) => void;
  /** A complete binary message. */
  onBinary?: (data: Buffer) => void;
  /** Any frame arrived (liveness). */
  onActivity?: () => void;
  /**
   * The connection is over, once. `byPeer`: the server sent the close (its
   * code and reason); otherwise this client closed it (a protocol fault, a
   * message too big, {@link WebSocketConnection.close}) or the socket dropped
   * (1006).
   */
  onClose?: (code: number, reason: string, byPeer: boolean) => void;
}

/** An open connection. Sends masked frames; every event goes to its handlers. */
export class WebSocketConnection {
  private buffer: Buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private fragmentBytes = 0;
  private fragmentOpcode = -1;
  private closeSent = false;
  private closed = false;
  private closeTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly decoder = new TextDecoder("utf-8", { fatal: true });

  constructor(
    private readonly socket: Duplex & { unref?: () => void; setNoDelay?: (noDelay?: boolean) => void },
    head: Buffer,
    private readonly handlers: WebSocketHandlers,
    private readonly maxMessageBytes: number = DEFAULT_MAX_MESSAGE_BYTES,
  ) {
    socket.setNoDelay?.(true);
    socket.unref?.();
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("error", () => {
      // 'close' follows and reports 1006; the error itself says nothing more useful to a caller
    });
    socket.on("close", () => {
      if (this.closeTimer !== null) clearTimeout(this.closeTimer);
      this.closeTimer = null;
      this.finish(CLOSE.abnormal, "", false);
    });
    if (head.length > 0) this.receive(head);
  }

  /** True until the connection is closed (by either side) or dropped. */
  get open(): boolean {
    return !this.closed && !this.closeSent;
  }

  /** Sends a text message (one frame). Ignored once closing. */
  send(text: string): void {
    if (!this.open) return;
    this.write(OP_TEXT, Buffer.from(text, "utf8"));
  }

  /** Sends a protocol-level ping. */
  ping(payload: Buffer = Buffer.alloc(0)): void {
    if (!this.open) return;
    this.write(OP_PING, payload.subarray(0, 125));
  }

  /**
   * Starts the closing handshake: sends `code`/`reason`, reports the close
   * at once, and drops the socket when the server answers or after a grace.
   */
  close(code: number = CLOSE.normal, reason = ""): void {
    this.sendClose(code, reason);
    this.finish(code, reason, false);
  }

  /** Drops the socket without a handshake (a dead peer). */
  terminate(code: number = CLOSE.abnormal, reason = ""): void {
    this.finish(code, reason, false);
    this.socket.destroy();
  }

  // ---------------------------------------------------------------- frames in

  private receive(chunk: Buffer): void {
    // After a close (ours or the server's) nothing more is read: the grace timer or the server ends the socket.
    if (this.closed) return;
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    while (!this.socket.destroyed) {
      const frame = this.nextFrame();
      if (frame === null || frame === "fault") return;
      this.handlers.onActivity?.();
      this.handle(frame.fin, frame.opcode, frame.payload);
      if (this.closed) return;
    }
  }

  /** The next complete frame off the buffer, null when more bytes are needed, "fault" when the connection was failed. */
  private nextFrame(): { fin: boolean; opcode: number; payload: Buffer } | null | "fault" {
    const buf = this.buffer;
    if (buf.length < 2) return null;
    const b0 = buf[0]!;
    const b1 = buf[1]!;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if ((b0 & 0x70) !== 0) return this.fault(CLOSE.protocolError, "reserved bits set without an extension");
    // RFC 6455, 5.1: a client closes the connection on a masked frame from the server.
    if ((b1 & 0x80) !== 0) return this.fault(CLOSE.protocolError, "masked frame from the server");
    let length = b1 & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (buf.length < 4) return null;
      length = buf.readUInt16BE(2);
      offset = 4;
    } else if (length === 127) {
      if (buf.length < 10) return null;
      const long = buf.readBigUInt64BE(2);
      if (long > BigInt(this.maxMessageBytes)) return this.fault(CLOSE.tooBig, `message larger than ${this.maxMessageBytes} bytes`);
      length = Number(long);
      offset = 10;
    }
    if (opcode >= 0x8) {
      if (!fin || length > 125) return this.fault(CLOSE.protocolError, "fragmented or oversized control frame");
    } else if (this.fragmentBytes + length > this.maxMessageBytes) {
      return this.fault(CLOSE.tooBig, `message larger than ${this.maxMessageBytes} bytes`);
    }
    if (buf.length < offset + length) return null;
    const payload = buf.subarray(offset, offset + length);
    this.buffer = buf.subarray(offset + length);
    return { fin, opcode, payload };
  }

  private handle(fin: boolean, opcode: number, payload: Buffer): void {
    switch (opcode) {
      case OP_TEXT:
      case OP_BINARY:
        if (this.fragmentOpcode !== -1) return void this.fault(CLOSE.protocolError, "a new message began inside a fragmented one");
        if (fin) {
          this.deliver(opcode, payload);
          return;
        }
        this.fragmentOpcode = opcode;
        this.fragments = [Buffer.from(payload)];
        this.fragmentBytes = payload.length;
        return;
      case OP_CONTINUATION: {
        if (this.fragmentOpcode === -1) return void this.fault(CLOSE.protocolError, "a continuation frame without a message");
        this.fragments.push(Buffer.from(payload));
        this.fragmentBytes += payload.length;
        if (!fin) return;
        const whole = Buffer.concat(this.fragments, this.fragmentBytes);
        const kind = this.fragmentOpcode;
        this.fragmentOpcode = -1;
        this.fragments = [];
        this.fragmentBytes = 0;
        this.deliver(kind, whole);
        return;
      }
      case OP_PING:
        if (this.open) this.write(OP_PONG, payload);
        return;
      case OP_PONG:
        return;
      case OP_CLOSE:
        this.peerClosed(payload);
        return;
      default:
        return void this.fault(CLOSE.protocolError, `unknown opcode ${opcode}`);
    }
  }

  private deliver(opcode: number, payload: Buffer): void {
    if (opcode === OP_BINARY) {
      this.handlers.onBinary?.(Buffer.from(payload));
      return;
    }
    let text: string;
    try {
      text = this.decoder.decode(payload);
    } catch {
      return void this.fault(CLOSE.invalidData, "a text message that is not UTF-8");
    }
    this.handlers.onText?.(text);
  }

  private peerClosed(payload: Buffer): void {
    if (payload.length === 1) return void this.fault(CLOSE.protocolError, "a close frame with a 1-byte body");
    const code = payload.length >= 2 ? payload.readUInt16BE(0) : CLOSE.noStatus;
    let reason = "";
    try {
      reason = this.decoder.decode(payload.subarray(2));
    } catch {
      reason = "";
    }
    // Echo the code (RFC 6455, 5.5.1), then end our side: the server closes the TCP connection.
    if (!this.closeSent) {
      this.closeSent = true;
      this.write(OP_CLOSE, payload.length >= 2 ? payload.subarray(0, 2) : Buffer.alloc(0));
    }
    this.finish(code, reason, true);
    this.socket.end();
    this.armCloseTimer();
  }

  /** Fails the connection: sends `code`, reports it, and returns "fault" to stop parsing. */
  private fault(code: number, reason: string): "fault" {
    this.sendClose(code, reason);
    this.finish(code, reason, false);
    this.buffer = Buffer.alloc(0);
    return "fault";
  }

  // ---------------------------------------------------------------- frames out

  private sendClose(code: number, reason: string): void {
    if (this.closeSent || this.closed || this.socket.destroyed) return;
    this.closeSent = true;
    const why = Buffer.from(reason, "utf8").subarray(0, 123);
    const body = Buffer.alloc(2 + why.length);
    body.writeUInt16BE(code, 0);
    why.copy(body, 2);
    this.write(OP_CLOSE, body);
    this.armCloseTimer();
  }

  private armCloseTimer(): void {
    if (this.closeTimer !== null) return;
    this.closeTimer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    this.closeTimer.unref();
  }

  /** One frame, FIN set, masked with a fresh key (RFC 6455, 5.3: every client frame is masked). */
  private write(opcode: number, payload: Buffer): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    const length = payload.length;
    const extra = length < 126 ? 0 : length < 0x10000 ? 2 : 8;
    const frame = Buffer.allocUnsafe(2 + extra + 4 + length);
    frame[0] = 0x80 | opcode;
    if (extra === 0) frame[1] = 0x80 | length;
    else if (extra === 2) {
      frame[1] = 0x80 | 126;
      frame.writeUInt16BE(length, 2);
    } else {
      frame[1] = 0x80 | 127;
      frame.writeBigUInt64BE(BigInt(length), 2);
    }
    const maskAt = 2 + extra;
    randomBytes(4).copy(frame, maskAt);
    for (let i = 0; i < length; i++) frame[maskAt + 4 + i] = payload[i]! ^ frame[maskAt + (i & 3)]!;
    this.socket.write(frame);
  }

  /** Reports the end of the connection, once. */
  private finish(code: number, reason: string, byPeer: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.handlers.onClose?.(code, reason, byPeer);
  }
}

/** What {@link connectWebSocket} ended with: an open connection, or why there is none. */
export type WebSocketOutcome =
  | { ok: true; connection: WebSocketConnection }
  /** `status`: the HTTP status of a refused upgrade (its body in `body`), 0 when there was no answer. */
  | { ok: false; status: number; body: string; reason: string };

export interface ConnectOptions {
  /** Extra request headers (`authorization`). */
  headers?: Record<string, string>;
  /** Deadline for the opening handshake, ms. */
  timeoutMs: number;
  handlers: WebSocketHandlers;
  /** @default {@link DEFAULT_MAX_MESSAGE_BYTES} */
  maxMessageBytes?: number;
}

/**
 * Opens a WebSocket to an `http(s)://` (or `ws(s)://`) URL. Never rejects:
 * a refused or failed handshake is a value.
 *
 * @example
 * const outcome = await connectWebSocket("http://127.0.0.1:8787/v1/policy/org_1/subscribe", {
 *   headers: { authorization: `Bearer ${token}` },
 *   timeoutMs: 10_000,
 *   handlers: { onText: (text) => console.log(text), onClose: (code) => console.log("closed", code) },
 * });
 */
export function connectWebSocket(url: string, options: ConnectOptions): Promise<WebSocketOutcome> {
  return new Promise((resolve) => {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return resolve({ ok: false, status: 0, body: "", reason: `not a URL: ${url}` });
    }
    const secure = target.protocol === "https:" || target.protocol === "wss:";
    if (!secure && target.protocol !== "http:" && target.protocol !== "ws:") {
      return resolve({ ok: false, status: 0, body: "", reason: `not an http(s) or ws(s) URL: ${url}` });
    }
    const key = randomBytes(16).toString("base64");
    const expectedAccept = createHash("sha1")
      .update(key + HANDSHAKE_GUID)
      .digest("base64");
    let settled = false;
    const settle = (outcome: WebSocketOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const request = (secure ? https : http).request({
      protocol: secure ? "https:" : "http:",
      hostname: target.hostname.replace(/^\[|\]$/g, ""),
      port: target.port || (secure ? 443 : 80),
      path: `${target.pathname}${target.search}`,
      method: "GET",
      agent: false,
      headers: {
        ...options.headers,
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": key,
      },
    });
    const where = `${target.hostname}:${target.port || (secure ? "443" : "80")}`;
    const timer = setTimeout(() => {
      request.destroy();
      settle({ ok: false, status: 0, body: "", reason: `no WebSocket handshake from ${where} within ${options.timeoutMs} ms` });
    }, options.timeoutMs);
    timer.unref();
    request.on("socket", (socket) => socket.unref());
    request.on("error", (err: NodeJS.ErrnoException) => {
      settle({ ok: false, status: 0, body: "", reason: `${err.code ?? err.message} (${where})` });
    });
    request.on("response", (res) => {
      // Not an upgrade: keep the error body (bounded) for its code.
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        if (size < MAX_ERROR_BODY_BYTES) chunks.push(chunk);
        size += chunk.length;
      });
      const done = () =>
        settle({
          ok: false,
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString("utf8").slice(0, MAX_ERROR_BODY_BYTES),
          reason: `HTTP ${res.statusCode} instead of a WebSocket upgrade`,
        });
      res.on("end", done);
      res.on("error", done);
      res.on("close", done);
    });
    request.on("upgrade", (res, socket, head) => {
      const refuse = (reason: string) => {
        socket.destroy();
        settle({ ok: false, status: res.statusCode ?? 0, body: "", reason });
      };
      if (settled) return void socket.destroy();
      if (String(res.headers.upgrade).toLowerCase() !== "websocket") return refuse("the server upgraded to something other than websocket");
      if (res.headers["sec-websocket-accept"] !== expectedAccept) return refuse("the server's Sec-WebSocket-Accept does not match the key");
      if (res.headers["sec-websocket-extensions"] || res.headers["sec-websocket-protocol"])
        return refuse("the server negotiated an extension or subprotocol that was not offered");
      settle({ ok: true, connection: new WebSocketConnection(socket, head, options.handlers, options.maxMessageBytes) });
    });
    request.end();
  });
}
