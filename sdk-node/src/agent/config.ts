/**
 * The agent's configuration from environment variables, as a value: the bin
 * prints the message of a bad one and exits 1. Pure: the environment, the
 * hostname and the pid are arguments.
 */
import { randomUUID } from "node:crypto";
import type { WaitStateOptions } from "../client.js";
import { MAX_ID_LENGTH, SAFE_MODE_STRATEGIES, type SafeModeStrategy } from "../../../protocol/src/constants.js";
import { DEFAULT_HOST, DEFAULT_PORT } from "./server.js";

/** What the agent reads; every other variable is ignored. */
export const AGENT_ENV = [
  "WAITSTATE_PUBLISH_KEY",
  "WAITSTATE_SECRET_KEY",
  "WAITSTATE_BASE_URL",
  "WAITSTATE_SITE_ID",
  "WAITSTATE_INSTANCE_ID",
  "WAITSTATE_SAFE_MODE_STRATEGY",
  "WAITSTATE_SAFE_MODE_MAX_RPS",
  "PORT",
  "HOST",
] as const;

export type AgentEnv = Partial<Record<(typeof AGENT_ENV)[number], string>>;

export interface AgentConfig {
  /** The client's options, without `onError` (the bin adds its logger). */
  client: Omit<WaitStateOptions, "onError">;
  port: number;
  host: string;
}

export type AgentConfigResult = { ok: true; config: AgentConfig } | { ok: false; message: string };

/**
 * The instance id when `WAITSTATE_INSTANCE_ID` is unset: the hostname (the pod
 * name, or the node name with `hostNetwork`) and the pid, which stay the same
 * across a container restart and differ between two agents on one machine.
 * Characters the control plane refuses become `-`; no usable hostname → a random id.
 */
export function defaultInstanceId(hostname: string, pid: number): string {
  const suffix = `-${pid}`;
  const host = hostname
    .replace(/[^A-Za-z0-9._:-]+/g, "-")
    .replace(/^[^A-Za-z0-9]+/, "")
    .slice(0, MAX_ID_LENGTH - suffix.length);
  return host === "" ? randomUUID() : `${host}${suffix}`;
}

/**
 * Reads the agent's configuration. Unset and empty variables mean the default.
 * The client checks its own options again when it is created (ids, URL).
 *
 * @example
 * const result = readAgentConfig(process.env, os.hostname(), process.pid);
 * if (!result.ok) { console.error(result.message); process.exit(1); }
 */
export function readAgentConfig(env: AgentEnv, hostname: string, pid: number): AgentConfigResult {
  const value = (name: (typeof AGENT_ENV)[number]): string | undefined => {
    const v = env[name]?.trim();
    return v === undefined || v === "" ? undefined : v;
  };
  const publishKey = value("WAITSTATE_PUBLISH_KEY");
  const secretKey = value("WAITSTATE_SECRET_KEY");
  const missing = [
    publishKey === undefined ? "WAITSTATE_PUBLISH_KEY" : null,
    secretKey === undefined ? "WAITSTATE_SECRET_KEY" : null,
  ].filter((name) => name !== null);
  if (publishKey === undefined || secretKey === undefined) {
    return { ok: false, message: `${missing.join(" and ")} must be set (the key pair from your WaitState dashboard)` };
  }
  // There is no default control plane: the keys go only where the operator says.
  const baseUrl = value("WAITSTATE_BASE_URL");
  if (baseUrl === undefined) {
    return { ok: false, message: "WAITSTATE_BASE_URL must be set (your control plane, e.g. http://127.0.0.1:8787 for `npm start`)" };
  }

  const strategy = value("WAITSTATE_SAFE_MODE_STRATEGY");
  if (strategy !== undefined && !(SAFE_MODE_STRATEGIES as readonly string[]).includes(strategy)) {
    return {
      ok: false,
      message: `WAITSTATE_SAFE_MODE_STRATEGY must be one of ${SAFE_MODE_STRATEGIES.join(", ")}, got ${JSON.stringify(strategy)}`,
    };
  }
  const rpsText = value("WAITSTATE_SAFE_MODE_MAX_RPS");
  const rps = rpsText === undefined ? undefined : Number(rpsText);
  if (rps !== undefined && !(Number.isFinite(rps) && rps >= 0)) {
    return { ok: false, message: `WAITSTATE_SAFE_MODE_MAX_RPS must be a number >= 0, got ${JSON.stringify(rpsText)}` };
  }
  const portText = value("PORT");
  const port = portText === undefined ? DEFAULT_PORT : Number(portText);
  if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    return { ok: false, message: `PORT must be an integer from 0 to 65535, got ${JSON.stringify(portText)}` };
  }

  const siteId = value("WAITSTATE_SITE_ID");
  return {
    ok: true,
    config: {
      client: {
        publishKey,
        secretKey,
        instanceId: value("WAITSTATE_INSTANCE_ID") ?? defaultInstanceId(hostname, pid),
        baseUrl,
        ...(siteId !== undefined ? { siteId } : {}),
        ...(strategy !== undefined ? { safeModeStrategy: strategy as SafeModeStrategy } : {}),
        ...(rps !== undefined ? { safeModeMaxRps: rps } : {}),
      },
      port,
      host: value("HOST") ?? DEFAULT_HOST,
    },
  };
}
