/**
 * The server half of RFC 6455 for SDK tests, over a node:http `upgrade`: it
 * accepts a handshake, reads the client's (masked) frames and writes frames
 * of any shape — including the malformed ones a test needs (masked, reserved
 * bits, oversized, fragmented, bad UTF-8).
 */
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

export interface Frame {
  fin: boolean;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

/** Writes the 101 answer for `req` on `socket`; false (and a 400) when the request is not a valid WebSocket handshake. */
export function acceptHandshake(req: IncomingMessage, socket: Duplex, extraHeaders: string[] = []): boolean {
  const key = req.headers["sec-websocket-key"];
  if (
    typeof key !== "string" ||
    req.headers["sec-websocket-version"] !== "13" ||
    String(req.headers.upgrade).toLowerCase() !== "websocket"
  ) {
    socket.end("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
    return false;
  }
  const accept = createHash("sha1")
    .update(key + GUID)
    .digest("base64");
  socket.write(
    [
      "HTTP/1.1 101 Switching Protocols",
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Accept: ${accept}`,
      ...extraHeaders,
      "",
      "",
    ].join("\r\n"),
  );
  return true;
}

/** Answers an upgrade with an ordinary HTTP error and its `{"error":{…}}` body. */
export function refuseUpgrade(socket: Duplex, status: number, code: string, message = code): void {
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** Encodes one frame (server frames are unmasked unless `mask` says otherwise). */
export function encodeFrame(
  opcode: number,
  payload: Buffer | string,
  options: { fin?: boolean; mask?: boolean; rsv?: number; declaredLength?: number } = {},
): Buffer {
  const body = typeof payload === "string" ? Buffer.from(payload, "utf8") : payload;
  const length = options.declaredLength ?? body.length;
  const extra = length < 126 ? 0 : length < 0x10000 ? 2 : 8;
  const head = Buffer.alloc(2 + extra);
  head[0] = ((options.fin ?? true) ? 0x80 : 0) | ((options.rsv ?? 0) << 4) | opcode;
  const maskBit = options.mask ? 0x80 : 0;
  if (extra === 0) head[1] = maskBit | length;
  else if (extra === 2) {
    head[1] = maskBit | 126;
    head.writeUInt16BE(length, 2);
  } else {
    head[1] = maskBit | 127;
    head.writeBigUInt64BE(BigInt(length), 2);
  }
  if (!options.mask) return Buffer.concat([head, body]);
  const key = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(body.map((b, i) => b ^ key[i & 3]!));
  return Buffer.concat([head, key, masked]);
}

/** One accepted connection: what the client sent, and ways to answer. */
export class ServerSocket {
  readonly frames: Frame[] = [];
  /** Text messages from the client. */
  readonly texts: string[] = [];
  /** The close frame the client sent: its code (1005 when it had none). */
  clientClose: number | null = null;
  ended = false;
  private buffer = Buffer.alloc(0);
  private listeners: Array<() => void> = [];

  constructor(
    readonly socket: Duplex,
    readonly request: IncomingMessage,
    private readonly autoPong = true,
  ) {
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("close", () => {
      this.ended = true;
      this.notify();
    });
    socket.on("error", () => {});
  }

  /** The Authorization header's bearer token. */
  get token(): string {
    const auth = this.request.headers.authorization ?? "";
    return auth.startsWith("Bearer ") ? auth.slice(7) : "";
  }

  sendText(text: string): void {
    this.raw(encodeFrame(0x1, text));
  }

  sendJson(value: unknown): void {
    this.sendText(JSON.stringify(value));
  }

  /** Writes bytes as they are (a hand-made or malformed frame). */
  raw(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Sends a close frame with `code` and `reason`, then ends the TCP connection. */
  close(code: number, reason = ""): void {
    const why = Buffer.from(reason, "utf8");
    const body = Buffer.alloc(2 + why.length);
    body.writeUInt16BE(code, 0);
    why.copy(body, 2);
    this.raw(encodeFrame(0x8, body));
    this.socket.end();
  }

  /** Drops the connection without a close frame. */
  destroy(): void {
    this.socket.destroy();
  }

  /** Resolves once `check` holds (re-checked at every frame and at the end); rejects after `timeoutMs`. */
  waitFor(check: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners = this.listeners.filter((l) => l !== listener);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const listener = () => {
        if (!check()) return;
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== listener);
        resolve();
      };
      this.listeners.push(listener);
    });
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  private receive(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) break;
      let length = b[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (b.length < 4) break;
        length = b.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (b.length < 10) break;
        length = Number(b.readBigUInt64BE(2));
        offset = 10;
      }
      const masked = (b[1]! & 0x80) !== 0;
      const keyAt = offset;
      if (masked) offset += 4;
      if (b.length < offset + length) break;
      const payload = Buffer.from(b.subarray(offset, offset + length));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ b[keyAt + (i & 3)]!;
      const frame = { fin: (b[0]! & 0x80) !== 0, opcode: b[0]! & 0x0f, masked, payload };
      this.buffer = b.subarray(offset + length);
      this.frames.push(frame);
      if (frame.opcode === 0x1) {
        const text = payload.toString("utf8");
        this.texts.push(text);
        if (this.autoPong && text === "ping") this.sendText("pong");
      } else if (frame.opcode === 0x8) {
        this.clientClose = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.socket.end();
      }
      this.notify();
    }
  }
}
