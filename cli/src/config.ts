/**
 * The config file: `$WAITSTATE_CONFIG`, else `$XDG_CONFIG_HOME/waitstate/config.json`,
 * else `~/.config/waitstate/config.json`. It holds a management token, so it is
 * written 0600 (its directory 0700) and replaced atomically.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { CliError, EXIT } from "./errors.js";

export interface SavedConfig {
  url: string;
  token: string;
  orgId?: string;
  orgName?: string;
  savedAt?: number;
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.WAITSTATE_CONFIG) return path.resolve(env.WAITSTATE_CONFIG);
  const base = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(homedir(), ".config");
  return path.join(base, "waitstate", "config.json");
}

/** The saved login, or null when there is none. A file that cannot be read or parsed is an error, not "logged out". */
export function loadConfig(file: string, warn: (line: string) => void): SavedConfig | null {
  if (!existsSync(file)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new CliError(EXIT.FAILURE, `cannot read the config file ${file}: ${(err as Error).message}`, [
      "Log in again to rewrite it: waitstate login --url <url> --token <token>",
    ]);
  }
  if (typeof parsed !== "object" || parsed === null) return null;
  const c = parsed as Record<string, unknown>;
  if (typeof c.url !== "string" || typeof c.token !== "string") return null;
  if (process.platform !== "win32") {
    try {
      const mode = statSync(file).mode & 0o777;
      if (mode & 0o077) warn(`warning: ${file} is readable by other users (mode ${mode.toString(8)}); run: chmod 600 ${file}`);
    } catch {
      // stat raced a delete: nothing to warn about
    }
  }
  return {
    url: c.url,
    token: c.token,
    ...(typeof c.orgId === "string" ? { orgId: c.orgId } : {}),
    ...(typeof c.orgName === "string" ? { orgName: c.orgName } : {}),
    ...(typeof c.savedAt === "number" ? { savedAt: c.savedAt } : {}),
  };
}

export function saveConfig(file: string, config: SavedConfig): void {
  const dir = path.dirname(file);
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  } else if (path.basename(dir) === "waitstate") {
    // our own directory: keep it private even if it was created by hand
    chmodSync(dir, 0o700);
  }
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600); // the umask cannot widen it, but a leftover tmp file could have other bits
  renameSync(tmp, file);
}

/** True when a file was removed. */
export function removeConfig(file: string): boolean {
  if (!existsSync(file)) return false;
  rmSync(file, { force: true });
  return true;
}
