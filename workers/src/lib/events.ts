/**
 * The operators' live view of a site (docs/protocol.md#live-site-events): the
 * site's aggregator pushes its changes over a hibernatable WebSocket to the
 * Worker, which hands them on as Server-Sent Events (an EventSource in the
 * dashboard, a streamed fetch in the CLI: neither needs a WebSocket client).
 */
import { EVENTS_PATH, SUBSCRIBER_HEADER, type SubscriberGrant } from "@waitstate/durable-objects";
import { ApiError, type ErrorCode } from "../errors.js";
import { aggregator } from "./aggregators.js";
import type { Env } from "../env.js";

/**
 * A stream lasts this long, then ends; EventSource and the CLI reconnect,
 * which checks the caller's credentials again (a revoked management token or
 * an ended session stops receiving within this bound).
 */
export const EVENT_STREAM_SECONDS = 15 * 60;

/** One message from the aggregator: `{"type": "status" | "policy" | "rule.fired" | "rule.cleared", …}`. */
export type SiteMessage = { type: string } & Record<string, unknown>;

/**
 * Opens the site's event socket at its aggregator (the caller has checked the
 * caller may see the site) and streams what it sends as SSE, each message
 * mapped by `render` to `[event, data]` pairs.
 */
export async function siteEventStream(
  env: Env,
  orgId: string,
  siteId: string,
  render: (message: SiteMessage) => Promise<Array<[string, string]>> = async (m) => [[m.type, JSON.stringify(m)]],
): Promise<Response> {
  const grant: SubscriberGrant = {
    kind: "events",
    orgId,
    siteId,
    keyId: null,
    tokenExpiresAt: Date.now() + EVENT_STREAM_SECONDS * 1000,
    keyEndsAt: null,
  };
  const res = await aggregator(env, orgId, siteId).fetch(
    new Request(`https://aggregator.internal${EVENTS_PATH}`, {
      headers: { upgrade: "websocket", [SUBSCRIBER_HEADER]: JSON.stringify(grant) },
    }),
  );
  const ws = res.webSocket;
  if (ws === null) {
    const body = (await res.json().catch(() => null)) as { error?: { code?: ErrorCode; message?: string } } | null;
    throw new ApiError(body?.error?.code ?? "INTERNAL_ERROR", body?.error?.message ?? "The site's event stream could not be opened");
  }
  ws.accept();
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  const encoder = new TextEncoder();
  let open = true;
  const end = () => {
    if (!open) return;
    open = false;
    try {
      ws.close(1000, "done");
    } catch {
      // already closed
    }
    writer.close().catch(() => undefined);
  };
  // Each write is chained on the previous one so events keep their order while `render` awaits.
  let queue: Promise<void> = writer.write(encoder.encode(`retry: 2000\n\n`));
  ws.addEventListener("message", (e) => {
    if (typeof e.data !== "string") return;
    const message = JSON.parse(e.data) as SiteMessage;
    queue = queue
      .then(async () => {
        if (!open) return;
        for (const [event, data] of await render(message)) {
          await writer.write(encoder.encode(`event: ${event}\ndata: ${data.replaceAll("\n", "\ndata: ")}\n\n`));
        }
      })
      // A failed write is the reader gone: stop listening, the aggregator forgets the socket.
      .catch(end);
  });
  ws.addEventListener("close", () => {
    void queue.finally(end);
  });
  ws.addEventListener("error", () => {
    void queue.finally(end);
  });
  return new Response(readable, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-accel-buffering": "no" },
  });
}
