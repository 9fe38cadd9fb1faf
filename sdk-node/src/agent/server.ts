/**
 * The agent sidecar's HTTP shell: a `node:http` server around one WaitState
 * client. It reads bodies (bounded while streaming), parses them, looks up the
 * route and writes the reply; the routes themselves are in `routes.ts`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { WaitState, type WaitStateOptions } from "../client.js";
import { WaitStateError } from "../errors.js";
import { AGENT_ROUTES, errorReply, parseBody, type AgentClient, type AgentReply } from "./routes.js";

export { AGENT_ERROR_STATUS, AGENT_ROUTES, type AgentClient, type AgentErrorCode, type AgentReply } from "./routes.js";

/** A request body may be this long, bytes. */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;
export const DEFAULT_PORT = 9000;
/** Loopback only by default; a DaemonSet that serves its node's pods sets `HOST=0.0.0.0`. */
export const DEFAULT_HOST = "127.0.0.1";
/** How long {@link Agent.close} waits for requests in flight before dropping their connections, ms. */
export const CLOSE_GRACE_MS = 2000;

export interface AgentOptions {
  /** The client every route feeds. The agent never shuts it down; {@link startAgent}'s `close()` does. */
  client: AgentClient;
  /** Longest request body, bytes; a longer one gets 400 `BODY_TOO_LARGE`. @default 65536 */
  maxBodyBytes?: number;
  /** Where unexpected failures (a 500) are logged, one line each. @default console.error */
  logError?: (line: string) => void;
}

export interface Agent {
  readonly server: Server;
  /**
   * Starts listening and resolves with the base URL (`http://127.0.0.1:9000`).
   * Rejects if the port cannot be bound.
   */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops accepting connections and resolves once the open ones are closed (in-flight requests get {@link CLOSE_GRACE_MS}). */
  close(): Promise<void>;
}

/**
 * Creates the agent's HTTP server around `client` without listening. Throws
 * `WaitStateError` (`INVALID_OPTIONS`) for a bad `maxBodyBytes`.
 *
 * @example
 * const ws = new WaitState({ publishKey, secretKey });
 * const agent = createAgent({ client: ws });
 * const url = await agent.listen(9000, "127.0.0.1");
 * // POST ${url}/gate {"tag":"search"} → {"allowed":true,"reason":"allowed"}
 * await agent.close();
 * await ws.shutdown();
 */
export function createAgent(options: AgentOptions): Agent {
  const client = options.client;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 1) {
    throw new WaitStateError("INVALID_OPTIONS", `createAgent(): maxBodyBytes must be a positive integer, got ${String(maxBodyBytes)}`);
  }
  const logError = options.logError ?? ((line: string) => console.error(line));
  const server = createServer((req, res) => void handle(req, res));
  let closing: Promise<void> | null = null;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = pathOf(req.url);
    const route = AGENT_ROUTES.get(path);
    // Answers given without reading a body close the connection, so the body is never read to its end.
    const unread = hasBody(req);
    if (route === undefined) {
      const message = `no route ${req.method ?? "?"} ${path}; routes: ${[...AGENT_ROUTES.keys()].join(", ")}`;
      return send(req, res, errorReply("NOT_FOUND", message), unread);
    }
    const method = req.method === "HEAD" && route.method === "GET" ? "GET" : req.method;
    if (method !== route.method) {
      const allow = route.method === "GET" ? "GET, HEAD" : route.method;
      return send(req, res, errorReply("METHOD_NOT_ALLOWED", `${path} takes ${allow}, not ${req.method ?? "?"}`, { allow }), unread);
    }
    if (route.method === "GET")
      return send(
        req,
        res,
        run(() => route.handle(client, {})),
        unread,
      );
    const read = await readBody(req, maxBodyBytes);
    if (read.outcome === "aborted") return; // the caller hung up: nobody to answer
    if (read.outcome === "too_large") {
      return send(req, res, errorReply("BODY_TOO_LARGE", `body: larger than ${maxBodyBytes} bytes`), true);
    }
    const parsed = parseBody(route, read.text);
    send(req, res, parsed.ok ? run(() => route.handle(client, parsed.body)) : parsed.reply);
  }

  function run(handler: () => AgentReply): AgentReply {
    try {
      return handler();
    } catch (e) {
      logError(`waitstate-agent: INTERNAL: ${oneLine(e instanceof Error ? (e.stack ?? e.message) : String(e))}`);
      return errorReply("INTERNAL", "the agent failed to handle this request; see its log");
    }
  }

  return {
    server,
    listen(port = DEFAULT_PORT, host = DEFAULT_HOST) {
      return new Promise<string>((resolve, reject) => {
        const onError = (e: Error) => reject(e);
        server.once("error", onError);
        server.listen(port, host, () => {
          server.off("error", onError);
          const address = server.address() as AddressInfo;
          const shown = address.address.includes(":") ? `[${address.address}]` : address.address;
          resolve(`http://${shown}:${address.port}`);
        });
      });
    },
    close() {
      if (closing === null && !server.listening) return Promise.resolve();
      closing ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}

export interface StartAgentOptions {
  /** Options of the WaitState client the agent creates and owns. */
  client: WaitStateOptions;
  /** @default 9000 (0 picks a free port) */
  port?: number;
  /** @default "127.0.0.1"; a DaemonSet serving other pods sets "0.0.0.0" */
  host?: string;
  /** @default 65536 */
  maxBodyBytes?: number;
  /** @default console.error */
  logError?: (line: string) => void;
}

export interface RunningAgent {
  /** The base URL it listens on. */
  readonly url: string;
  readonly client: WaitState;
  /** Stops the server, then shuts the client down, which sends the final pulse. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Creates a WaitState client and an agent around it, and starts listening.
 * Throws the client's `WaitStateError` (`INVALID_OPTIONS`) for bad options, or
 * the listen error (`EADDRINUSE`…), after shutting the client down.
 *
 * @example
 * const agent = await startAgent({
 *   client: { publishKey: process.env.WAITSTATE_PUBLISH_KEY!, secretKey: process.env.WAITSTATE_SECRET_KEY! },
 *   port: 9000,
 * });
 * process.once("SIGTERM", () => void agent.close());
 */
export async function startAgent(options: StartAgentOptions): Promise<RunningAgent> {
  const client = new WaitState(options.client);
  const agent = createAgent({
    client,
    ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
    ...(options.logError !== undefined ? { logError: options.logError } : {}),
  });
  let url: string;
  try {
    url = await agent.listen(options.port ?? DEFAULT_PORT, options.host ?? DEFAULT_HOST);
  } catch (e) {
    await client.shutdown();
    throw e;
  }
  let closing: Promise<void> | null = null;
  return {
    url,
    client,
    close() {
      // The server first, so nothing reaches the client after its final pulse.
      closing ??= agent.close().then(() => client.shutdown());
      return closing;
    },
  };
}

// ------------------------------------------------------------------ HTTP plumbing

type BodyRead = { outcome: "read"; text: string } | { outcome: "too_large" } | { outcome: "aborted" };

/** Whether the request announces a body (a Content-Length above 0, or chunked). */
function hasBody(req: IncomingMessage): boolean {
  return req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
}

/**
 * Reads the body, counting bytes as they stream in. Past `limit` it stops
 * collecting at once (a declared Content-Length past it is refused before
 * reading anything), and {@link send} then closes the connection.
 */
function readBody(req: IncomingMessage, limit: number): Promise<BodyRead> {
  if (Number(req.headers["content-length"]) > limit) return Promise.resolve({ outcome: "too_large" });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (read: BodyRead) => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onAborted);
      req.off("close", onAborted);
      resolve(read);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      chunks.length = 0;
      settle({ outcome: "too_large" });
    };
    const onEnd = () => settle({ outcome: "read", text: Buffer.concat(chunks).toString("utf8") });
    const onAborted = () => settle({ outcome: "aborted" });
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onAborted);
    req.on("close", onAborted);
  });
}

function discard(): void {}

/**
 * Writes a reply as JSON. With `unread` (a body not read to its end), the rest
 * of the body is discarded as it arrives, never buffered, the reply says
 * `Connection: close`, and the socket is destroyed once the reply has gone out:
 * the caller gets its answer and an oversize upload is cut off.
 */
function send(req: IncomingMessage, res: ServerResponse, reply: AgentReply, unread = false): void {
  const headers: Record<string, string | number> = { ...reply.headers };
  if (unread) {
    req.on("data", discard);
    headers.connection = "close";
    const socket = req.socket;
    res.once("finish", () => socket.destroy());
  }
  if (reply.body === undefined) {
    res.writeHead(reply.status, headers);
    res.end();
    return;
  }
  const json = JSON.stringify(reply.body);
  headers["content-type"] = "application/json; charset=utf-8";
  headers["content-length"] = Buffer.byteLength(json);
  res.writeHead(reply.status, headers);
  res.end(json);
}

/** The path of a request target, without the query. */
function pathOf(url: string | undefined): string {
  const target = url ?? "/";
  const query = target.indexOf("?");
  return query === -1 ? target : target.slice(0, query);
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " | ");
}
