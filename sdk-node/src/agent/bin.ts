#!/usr/bin/env node
/**
 * `waitstate-agent`: the agent sidecar. Configured by environment variables
 * (see `config.ts`); logs one line to stdout when it listens and one line to
 * stderr per client error. SIGTERM or SIGINT: stop accepting requests, send
 * the final pulse, exit 0. A second signal exits at once with 1.
 */
import { hostname } from "node:os";
import { WaitStateError } from "../errors.js";
import { readAgentConfig } from "./config.js";
import { startAgent, type RunningAgent } from "./server.js";

const NAME = "waitstate-agent";

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " | ");
}

function logError(line: string): void {
  process.stderr.write(`${oneLine(line)}\n`);
}

function fatal(message: string): never {
  logError(`${NAME}: ${message}`);
  process.exit(1);
}

async function main(): Promise<void> {
  const result = readAgentConfig(process.env, hostname(), process.pid);
  if (!result.ok) fatal(result.message);
  const { client, port, host } = result.config;

  let agent: RunningAgent;
  try {
    agent = await startAgent({
      client: {
        ...client,
        onError: (e) => logError(`${NAME}: ${e.code}${e.status !== 0 ? ` (${e.status})` : ""}: ${e.message}`),
      },
      port,
      host,
      logError,
    });
  } catch (e) {
    if (e instanceof WaitStateError) fatal(`invalid configuration: ${e.message}`);
    fatal(`cannot listen on ${host}:${port}: ${e instanceof Error ? e.message : String(e)}`);
  }
  process.stdout.write(
    `${NAME} listening on ${agent.url} (instance ${agent.client.instanceId}, control plane ${client.baseUrl ?? "default"})\n`,
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logError(`${NAME}: ${signal} again: exiting without waiting for the final pulse`);
      process.exit(1);
    }
    stopping = true;
    process.stdout.write(`${NAME}: ${signal}: closing, sending the final pulse\n`);
    void agent.close().then(() => {
      process.stdout.write(`${NAME}: stopped\n`);
      process.exit(0);
    });
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

void main();
