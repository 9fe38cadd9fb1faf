/**
 * A scripted stand-in for the control plane's `POST /v1/pulse` on a real
 * `node:http` server (127.0.0.1, a free port): it checks the signature and the
 * schema's bounds as the Worker does, counts each (instanceId, ts) once — it
 * remembers each instance's last ts, as the SiteAggregator does — and answers
 * the next scripted way. Used in-process by the Node suite, and over HTTP by
 * the workerd suite (started by its globalSetup):
 * `POST /__script` (JSON array of {@link Step}s, resets the state), `GET /__state`.
 */
import { createHmac } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/**
 * How the next pulse is answered (when the script is empty: `ok`).
 * - `ok`: counted (unless a replay), 200 with the policy, `etag` and `x-waitstate-counted`.
 * - `500`, `401`, `400`: that status, nothing counted.
 * - `hang`: never answers.
 * - `drop`: destroys the connection before counting.
 * - `count-then-drop`: counts, then destroys the connection (the answer is lost).
 * - `counted-no-policy`: counts, 200 with a body that is no policy, `x-waitstate-counted: true`.
 * - `proxy-page`: 200 HTML, nothing counted, no `x-waitstate-counted` (a proxy's page).
 */
export type Step = "ok" | "500" | "401" | "400" | "hang" | "drop" | "count-then-drop" | "counted-no-policy" | "proxy-page";

export interface SeenPulse {
  step: Step;
  body: string;
  timestamp: string;
  signatureValid: boolean;
  /** The schema's bounds that a real control plane would refuse (tag length, tag count, body size, duplicates). */
  schemaProblems: string[];
  counted: boolean;
}

export interface FakeState {
  /** Sum of `usageDelta` over the pulses counted (each instanceId + ts once). */
  counted: number;
  bounced: number;
  seen: SeenPulse[];
}

export const FAKE_SECRET = "sk_fake";
export const FAKE_ETAG = '"policy-7"';
export const FAKE_POLICY = {
  version: 7,
  globalMaxWeight: null,
  tagMaxWeights: { free: 0 },
  killSignal: false,
  status: "ok",
  pulseInterval: 1000,
  leaseDurationSeconds: 60,
};

export class FakeControlPlane {
  url = "";
  private server: Server | null = null;
  private script: Step[] = [];
  private lastTs = new Map<string, number>();
  private readonly sockets = new Set<Socket>();
  state: FakeState = { counted: 0, bounced: 0, seen: [] };

  /** Replaces the script and forgets everything seen. */
  reset(script: Step[] = []): void {
    this.script = [...script];
    this.lastTs.clear();
    this.state = { counted: 0, bounced: 0, seen: [] };
  }

  /** Appends to the script. */
  next(...steps: Step[]): void {
    this.script.push(...steps);
  }

  async start(): Promise<this> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    this.server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server?.close(resolve));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const body = raw.toString("utf8");
    if (req.url === "/__script" && req.method === "POST") {
      this.reset(JSON.parse(body) as Step[]);
      return void res.writeHead(204).end();
    }
    if (req.url === "/__state") return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(this.state));
    if (req.url !== "/v1/pulse" || req.method !== "POST") return void res.writeHead(404).end();

    const step = this.script.shift() ?? "ok";
    const timestamp = String(req.headers["x-waitstate-timestamp"] ?? "");
    const expected = createHmac("sha256", FAKE_SECRET).update(`${body}.${timestamp}`).digest("hex");
    const seen: SeenPulse = {
      step,
      body,
      timestamp,
      signatureValid: req.headers["x-waitstate-signature"] === expected && req.headers["x-waitstate-id"] === "pk_fake",
      schemaProblems: schemaProblems(raw.byteLength, body),
      counted: false,
    };
    this.state.seen.push(seen);
    const count = () => {
      if (!seen.signatureValid || seen.schemaProblems.length > 0) return;
      const pulse = JSON.parse(body) as { instanceId: string; ts: number; usageDelta: number; bouncedUnits: number };
      const last = this.lastTs.get(pulse.instanceId);
      if (last !== undefined && pulse.ts <= last) return; // a replay: acknowledged, not counted
      this.lastTs.set(pulse.instanceId, pulse.ts);
      this.state.counted += pulse.usageDelta;
      this.state.bounced += pulse.bouncedUnits;
      seen.counted = true;
    };
    switch (step) {
      case "hang":
        return; // the socket is destroyed at stop()
      case "drop":
        return void req.socket.destroy();
      case "count-then-drop":
        count();
        return void req.socket.destroy();
      case "500":
      case "401":
      case "400":
        return void res
          .writeHead(Number(step), { "content-type": "application/json" })
          .end(`{"error":{"code":"SCRIPTED","message":"${step}"}}`);
      case "proxy-page":
        return void res.writeHead(200, { "content-type": "text/html" }).end("<html>maintenance</html>");
      case "counted-no-policy":
        count();
        return void res.writeHead(200, { "content-type": "application/json", "x-waitstate-counted": "true" }).end("{}{");
      case "ok": {
        if (!seen.signatureValid) return void res.writeHead(401).end('{"error":{"code":"INVALID_SIGNATURE","message":"no"}}');
        if (seen.schemaProblems.length > 0) {
          return void res
            .writeHead(422)
            .end(JSON.stringify({ error: { code: "VALIDATION_FAILED", message: seen.schemaProblems.join("; ") } }));
        }
        count();
        return void res
          .writeHead(200, { "content-type": "application/json", etag: FAKE_ETAG, "x-waitstate-counted": String(seen.counted) })
          .end(JSON.stringify(FAKE_POLICY));
      }
    }
  }
}

/** What protocol's PulseSchema and the Worker's 64 KiB cap would refuse in a pulse body. */
function schemaProblems(bytes: number, body: string): string[] {
  const problems: string[] = [];
  if (bytes > 64 * 1024) problems.push(`body of ${bytes} bytes`);
  let pulse: { ts?: unknown; usageDelta?: number; tagMetrics?: Array<{ tag: string; count: number }> };
  try {
    pulse = JSON.parse(body) as typeof pulse;
  } catch {
    return [...problems, "not JSON"];
  }
  if (!Number.isSafeInteger(pulse.ts)) problems.push("ts");
  const tags = pulse.tagMetrics ?? [];
  if (tags.length > 512) problems.push(`${tags.length} tags`);
  const names = new Set<string>();
  let sum = 0;
  for (const t of tags) {
    if (t.tag.length < 1 || t.tag.length > 128) problems.push(`tag of ${t.tag.length} characters`);
    if (names.has(t.tag)) problems.push(`duplicate tag ${t.tag}`);
    names.add(t.tag);
    sum += t.count;
  }
  if (sum !== pulse.usageDelta) problems.push("usageDelta is not the tags' sum");
  return problems;
}
