/**
 * The `waitstate` CLI, run as the real binary (node cli/bin/waitstate.mjs in a
 * child process, stdin a pipe so never a TTY, its own WAITSTATE_CONFIG)
 * against the real control plane under `wrangler dev`: login and its
 * failures, the config file's mode, every command's table and --json output,
 * API validation errors naming the field, the kill switch's confirmation,
 * status after real SDK pulses, tail printing a rule fire, and exit codes.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WaitState } from "../sdk-node/src/index.js";
import { freePort, startLocalControlPlane, type LocalControlPlane, type Tenant } from "../scripts/local-control-plane.mjs";
import {
  ROOT,
  SCRIPT_BIN,
  runCli,
  runInTerminal,
  spawnCli,
  until,
  type CliOptions,
  type CliResult,
  type RunningCli,
} from "./support/cli.js";

let cp: LocalControlPlane;
let tenant: Tenant;
let dir: string;
let configFile: string;
/** A plain HTTP server that is not a WaitState control plane. */
let impostor: Server;
let impostorUrl: string;
const running: RunningCli[] = [];

/** Every output the suite saw, checked for colour codes at the end (stdout/stderr are pipes). */
const seen: CliResult[] = [];

async function ws(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const result = await runCli(args, { ...options, env: { WAITSTATE_CONFIG: configFile, ...options.env } });
  seen.push(result);
  return result;
}

/** Runs a command that must succeed and returns its stdout. */
async function ok(args: string[], options: CliOptions = {}): Promise<string> {
  const r = await ws(args, options);
  if (r.code !== 0) throw new Error(`waitstate ${args.join(" ")} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

async function okJson<T = any>(args: string[]): Promise<T> {
  return JSON.parse(await ok([...args, "--json"])) as T;
}

/** The table's header row and the row whose first cell is `key`, split on runs of 2+ spaces. */
function tableRow(out: string, key: string): string[] {
  const row = out.split("\n").find((l) => l.split(/\s{2,}/)[0] === key);
  if (!row) throw new Error(`no row "${key}" in:\n${out}`);
  return row.trim().split(/\s{2,}/);
}

function buildCli(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(ROOT, "node_modules", ".bin", "tsc"), ["-b", "cli"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.once("error", reject);
    child.once("close", (code) => (code === 0 ? resolve() : reject(new Error(`tsc -b cli failed:\n${out}`))));
  });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "waitstate-cli-"));
  configFile = path.join(dir, "conf", "waitstate", "config.json");
  impostor = createServer((req, res) => {
    if (req.url === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true,"service":"something-else"}');
    } else {
      res.writeHead(404, { "content-type": "text/html" }).end("<h1>Not Found</h1>");
    }
  });
  await new Promise<void>((r) => impostor.listen(0, "127.0.0.1", r));
  impostorUrl = `http://127.0.0.1:${(impostor.address() as AddressInfo).port}`;
  // The webhook commands use 127.0.0.1 URLs, which only an opted-in control plane accepts.
  [cp] = await Promise.all([startLocalControlPlane({ vars: { WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true" } }), buildCli()]);
  tenant = await cp.tenant("CLI E2E", "enterprise");
});

afterAll(async () => {
  for (const r of running) if (r.child.exitCode === null) r.child.kill("SIGKILL");
  await new Promise<void>((r) => (impostor ? impostor.close(() => r()) : r()));
  await cp?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("waitstate CLI against wrangler dev", () => {
  it("documents every command and the exit codes in --help; usage errors exit 2", async () => {
    const top = await ws(["--help"]);
    expect(top.code).toBe(0);
    for (const line of [
      "0  ok",
      "1  the API reported a failure",
      "2  usage error",
      "3  not logged in",
      "4  not found",
      "5  the control plane is unreachable",
    ]) {
      expect(top.stdout).toContain(line);
    }
    const commands = [
      "login",
      "logout",
      "orgs",
      "tokens list",
      "tokens create",
      "tokens revoke",
      "keys list",
      "keys create",
      "keys rotate",
      "keys revoke",
      "sites list",
      "sites show",
      "sites create",
      "sites set",
      "sites rm",
      "tags list",
      "tags add",
      "tags edit",
      "tags rm",
      "rules list",
      "rules add",
      "rules edit",
      "rules rm",
      "rules enable",
      "rules disable",
      "kill on",
      "kill off",
      "status",
      "tail",
      "usage",
      "audit",
      "webhooks list",
      "webhooks add",
      "webhooks edit",
      "webhooks rm",
      "webhooks deliveries",
    ];
    for (let i = 0; i < commands.length; i += 8) {
      const batch = commands.slice(i, i + 8);
      const results = await Promise.all(batch.map((c) => ws([...c.split(" "), "--help"])));
      results.forEach((r, j) => {
        expect(r.code, batch[j]).toBe(0);
        expect(r.stdout, batch[j]).toContain(`Usage: waitstate ${batch[j]}`);
        expect(r.stdout, batch[j]).toContain("Exit codes:");
      });
    }
    const help = await ws(["rules", "add", "--help"]);
    for (const flag of [
      "--tag",
      "--all-traffic",
      "--metric",
      "--metric-tag",
      "--operator",
      "--threshold",
      "--action",
      "--action-value",
      "--priority",
      "--cooldown-seconds",
      "--site",
      "--disabled",
    ]) {
      expect(help.stdout).toContain(flag);
    }

    const [none, unknown, badFlag, missing] = await Promise.all([ws([]), ws(["sits"]), ws(["orgs", "--bogus"]), ws(["sites", "show"])]);
    expect(none.code).toBe(2);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("Did you mean: waitstate sites?");
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain("--bogus");
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("<site-id>");
  });

  it("login: a wrong URL exits 5, a wrong token exits 3, nothing is saved; a good login is saved 0600", async () => {
    const notLoggedIn = await ws(["orgs"]);
    expect(notLoggedIn.code).toBe(3);
    expect(notLoggedIn.stderr).toContain("not logged in");
    expect(notLoggedIn.stderr).toContain("waitstate login --url");

    const dead = `http://127.0.0.1:${await freePort()}`;
    const [unreachable, impostorLogin, wrongPath, badToken, noToken] = await Promise.all([
      ws(["login", "--url", dead, "--token", tenant.managementToken]),
      ws(["login", "--url", impostorUrl, "--token", tenant.managementToken]),
      ws(["login", "--url", `${cp.url}/v1`, "--token", tenant.managementToken]),
      ws(["login", "--url", cp.url, "--token", "ws_mgmt_not-a-real-token"]),
      ws(["login", "--url", cp.url]),
    ]);
    expect(unreachable.code).toBe(5);
    expect(unreachable.stderr).toContain(`could not reach a WaitState control plane at ${dead}`);
    expect(unreachable.stderr).toContain("connection refused");
    expect(impostorLogin.code).toBe(5);
    expect(impostorLogin.stderr).toContain(`${impostorUrl} is not a WaitState control plane`);
    expect(wrongPath.code).toBe(5);
    expect(wrongPath.stderr).toContain("is not a WaitState control plane (GET /healthz answered HTTP 404)");
    expect(badToken.code).toBe(3);
    expect(badToken.stderr).toContain("rejected the token");
    expect(badToken.stderr).toContain("INVALID_TOKEN");
    expect(badToken.stderr).toContain(`waitstate login --url ${cp.url} --token`);
    expect(noToken.code).toBe(2);
    expect(existsSync(configFile)).toBe(false);

    const login = await ws(["login", "--url", `${cp.url}/`, "--token", tenant.managementToken]);
    expect(login.code).toBe(0);
    expect(login.stdout).toContain(`Logged in to ${cp.url} as CLI E2E (${tenant.orgId}, enterprise plan)`);
    expect(statSync(configFile).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(configFile)).mode & 0o777).toBe(0o700);
    const saved = JSON.parse(readFileSync(configFile, "utf8"));
    expect(saved).toMatchObject({ url: cp.url, token: tenant.managementToken, orgId: tenant.orgId });

    // the token from stdin, and a re-login keeps the mode
    const again = await ws(["login", "--url", cp.url, "--token", "-", "--json"], { input: `${tenant.managementToken}\n` });
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({
      url: cp.url,
      service: "waitstate-control-plane",
      organizations: [{ id: tenant.orgId }],
    });
    expect(statSync(configFile).mode & 0o777).toBe(0o600);
  });

  it("orgs and usage: tables and --json; flags and env override the saved login", async () => {
    const orgs = await ok(["orgs"]);
    expect(tableRow(orgs, "ID")).toEqual(["ID", "NAME", "PLAN", "CREATED", "ROLE", "SITES"]);
    expect(tableRow(orgs, tenant.orgId).slice(0, 3)).toEqual([tenant.orgId, "CLI E2E", "enterprise"]);
    expect(tableRow(orgs, tenant.orgId).slice(-2)).toEqual(["admin", "all"]);
    expect(await okJson(["orgs"])).toEqual({
      organizations: [expect.objectContaining({ id: tenant.orgId, name: "CLI E2E", plan: "enterprise", suspended: false })],
      access: expect.objectContaining({ role: "admin", siteIds: null }),
    });

    const usage = await ok(["usage"]);
    expect(usage).toContain("Plan enterprise: unlimited gate calls a month.");
    expect(await okJson(["usage", "--month", "2026-01"])).toEqual({
      plan: "enterprise",
      monthlyCallLimit: null,
      usage: [{ month: "2026-01", calls: 0, bounced: 0 }],
    });
    const badMonth = await ws(["usage", "--month", "January"]);
    expect(badMonth.code).toBe(1);
    expect(badMonth.stderr).toContain("month must be YYYY-MM");

    // env and flags win over the saved login; a saved token is never sent to another URL
    const [envToken, flagToken, otherUrl, envBoth] = await Promise.all([
      ws(["orgs"], { env: { WAITSTATE_TOKEN: "ws_mgmt_wrong" } }),
      ws(["orgs", "--token", "ws_mgmt_wrong"]),
      ws(["orgs", "--url", impostorUrl]),
      ws(["orgs", "--json"], {
        env: { WAITSTATE_CONFIG: path.join(dir, "none.json"), WAITSTATE_URL: cp.url, WAITSTATE_TOKEN: tenant.managementToken },
      }),
    ]);
    expect(envToken.code).toBe(3);
    expect(flagToken.code).toBe(3);
    expect(otherUrl.code).toBe(3);
    expect(otherUrl.stderr).toContain(`not logged in to ${impostorUrl}`);
    expect(envBoth.code).toBe(0);
    expect(JSON.parse(envBoth.stdout).organizations[0].id).toBe(tenant.orgId);
  });

  it("keys create, list, rotate (asks first), revoke", async () => {
    const created = await ok(["keys", "create", "--name", "cli-web"]);
    const id = /^id\s+(key_\S+)$/m.exec(created)?.[1];
    expect(id).toBeDefined();
    expect(created).toMatch(/^secretKey\s+ws_sec_\S+$/m);

    const json = await okJson(["keys", "create", "--name", "cli-json"]);
    expect(json).toMatchObject({
      id: expect.stringMatching(/^key_/),
      name: "cli-json",
      publishKey: expect.stringMatching(/^ws_pub_/),
      secretKey: expect.stringMatching(/^ws_sec_/),
    });

    const refused = await ws(["keys", "rotate", id!]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("Pass --yes");
    const rotated = await okJson(["keys", "rotate", id!, "--yes"]);
    expect(rotated).toMatchObject({ replaces: id, secretKey: expect.stringMatching(/^ws_sec_/) });
    const revoked = await ok(["keys", "revoke", json.id, "--yes"]);
    expect(revoked).toContain(`Revoked ${json.id} (cli-json`);

    const list = await ok(["keys", "list"]);
    expect(tableRow(list, "ID")).toEqual(["ID", "NAME", "PUBLISH KEY", "SITE", "CREATED", "REVOKED", "STATE"]);
    expect(tableRow(list, id!).at(-1)).toBe(`rotated → ${rotated.id}`);
    expect(tableRow(list, rotated.id).at(-1)).toBe("active");
    expect(tableRow(list, json.id).at(-1)).toBe("revoked");
    expect(list).not.toContain("ws_sec_");
    const listed = await okJson<{ apiKeys: Array<{ id: string }> }>(["keys"]);
    expect(listed.apiKeys.map((k) => k.id)).toEqual(expect.arrayContaining([id, rotated.id, json.id, (tenant.key as { id: string }).id]));

    const [again, missing] = await Promise.all([ws(["keys", "rotate", id!, "--yes"]), ws(["keys", "revoke", "key_nope", "--yes"])]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("CONFLICT");
    expect(missing.code).toBe(4);
    expect(missing.stderr).toContain("NOT_FOUND: No such API key");

    // Scoped keys, and a rotation that keeps the old key valid for a while.
    const scoped = await okJson(["keys", "create", "--name", "cli-ci", "--environment", "test", "--site", "staging"]);
    expect(scoped).toMatchObject({ environment: "test", siteId: "staging", publishKey: expect.stringMatching(/^ws_pub_test_/) });
    const graced = await okJson(["keys", "rotate", scoped.id, "--grace-seconds", "3600", "--yes"]);
    expect(graced).toMatchObject({ replaces: scoped.id, environment: "test", siteId: "staging" });
    expect(graced.oldKeyValidUntil).toBeGreaterThan(Date.now() + 3500_000);
    expect(tableRow(await ok(["keys", "list"]), scoped.id).at(-1)).toMatch(new RegExp(`^rotated → ${graced.id}, valid until `));
    const badGrace = await ws(["keys", "rotate", graced.id, "--grace-seconds", "9999999", "--yes"]);
    expect(badGrace.stderr).toContain("--grace-seconds");
  });

  it("tokens create (shown once), list marks this login's, revoke (asks first); the last active one stays", async () => {
    const created = await ws(["tokens", "create", "--name", "ci deploys", "--role", "admin"]);
    expect(created.code, created.stderr).toBe(0);
    const id = /^id\s+(mt_\S+)$/m.exec(created.stdout)?.[1];
    const secret = /^token\s+(ws_mgmt_\S+)$/m.exec(created.stdout)?.[1];
    expect(id).toBeDefined();
    expect(secret).toBeDefined();
    expect(created.stderr).toContain("not shown again");
    const missingName = await ws(["tokens", "create"]);
    expect(missingName.code).toBe(1);
    expect(missingName.stderr).toContain("--name");
    expect(missingName.stderr).toContain("--role");
    const scoped = await okJson<{ role: string; siteIds: string[] }>([
      "tokens",
      "create",
      "--name",
      "checkout on-call",
      "--role",
      "editor",
      "--site",
      "checkout, checkout-eu",
    ]);
    expect(scoped).toMatchObject({ role: "editor", siteIds: ["checkout", "checkout-eu"] });
    const scopedAdmin = await ws(["tokens", "create", "--name", "x", "--role", "admin", "--site", "checkout"]);
    expect(scopedAdmin.code).toBe(1);
    expect(scopedAdmin.stderr).toContain("--site");

    // the new token works for the CLI too (flags override the saved login)
    const asNew = await okJson<{ managementTokens: Array<{ id: string; current: boolean }> }>(["tokens", "--token", secret!]);
    expect(asNew.managementTokens.find((t) => t.current)?.id).toBe(id);

    const list = await ok(["tokens", "list"]);
    expect(tableRow(list, "ID")).toEqual(["ID", "NAME", "ROLE", "SITES", "CREATED", "REVOKED", "STATE"]);
    expect(tableRow(list, id!).slice(2, 4)).toEqual(["admin", "all"]);
    expect(tableRow(list, id!).at(-1)).toBe("active");
    expect(list).toMatch(/active \(this login\)/);
    expect(list).not.toContain("ws_mgmt_");

    const refused = await ws(["tokens", "revoke", id!]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("Pass --yes");
    expect(await ok(["tokens", "revoke", id!, "--yes"])).toContain(`Revoked ${id} (ci deploys)`);
    const rejected = await ws(["orgs", "--token", secret!]);
    expect(rejected.code).toBe(3);

    const mine = (await okJson<{ managementTokens: Array<{ id: string; current: boolean }> }>(["tokens"])).managementTokens.find(
      (t) => t.current,
    )!;
    const last = await ws(["tokens", "revoke", mine.id, "--yes"]);
    expect(last.code).toBe(1);
    expect(last.stderr).toContain("last active admin token");
  });

  it("tags add, list, edit by name, rm", async () => {
    expect(await ok(["tags", "add", "gold", "--max-weight", "20", "--priority", "10"])).toContain("Added tag gold");
    const dup = await ws(["tags", "add", "gold"]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain("CONFLICT");
    const edited = await okJson(["tags", "edit", "gold", "--max-weight", "25"]);
    expect(edited).toMatchObject({ name: "gold", maxWeight: 25, priority: 10, autoCreated: false });
    const table = await ok(["tags"]);
    expect(tableRow(table, "ID")).toEqual(["ID", "NAME", "MAX WEIGHT", "PRIORITY", "SOURCE", "CREATED"]);
    expect(tableRow(table, edited.id).slice(1, 5)).toEqual(["gold", "25", "10", "configured"]);

    const [negative, missing, nothing] = await Promise.all([
      ws(["tags", "edit", "gold", "--max-weight", "-1"]),
      ws(["tags", "edit", "nope", "--priority", "1"]),
      ws(["tags", "edit", "gold"]),
    ]);
    expect(negative.code).toBe(1);
    expect(negative.stderr).toContain("maxWeight (--max-weight)");
    expect(missing.code).toBe(4);
    expect(nothing.code).toBe(2);
    expect(await ok(["tags", "rm", "gold"])).toContain(`Removed tag gold (${edited.id})`);
    expect((await okJson<{ tags: unknown[] }>(["tags", "list"])).tags).toEqual([]);
  });

  it("sites create, list, show, set (API validation names the flag), rm; kill on/off asks first", async () => {
    const created = await okJson(["sites", "create", "edge", "--pulse-interval-ms", "500", "--lease-seconds", "10"]);
    expect(created).toMatchObject({
      siteId: "edge",
      killSwitch: false,
      settings: { pulseIntervalMs: 500, leaseDurationSeconds: 10, windowSeconds: null },
    });
    const set = await ok(["sites", "set", "edge", "--window-seconds", "5", "--lease-seconds", "default"]);
    expect(set).toMatch(/^window\s+5 s \(set for this site\)$/m);
    expect(set).toMatch(/^lease\s+60 s \(plan default\)$/m);
    const list = await ok(["sites"]);
    expect(tableRow(list, "SITE")).toEqual(["SITE", "KILL", "PULSE", "LEASE", "WINDOW", "LAST PULSE", "CREATED"]);
    expect(tableRow(list, "edge").slice(1, 5)).toEqual(["off", "500 ms*", "60 s", "5 s*"]);
    expect(list).toContain("* set for this site");

    const [tooShort, unknown, nothing] = await Promise.all([
      ws(["sites", "set", "edge", "--lease-seconds", "1"]),
      ws(["sites", "show", "nope"]),
      ws(["sites", "set", "edge"]),
    ]);
    expect(tooShort.code).toBe(1);
    expect(tooShort.stderr).toContain("VALIDATION_FAILED");
    expect(tooShort.stderr).toContain("leaseDurationSeconds (--lease-seconds)");
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toContain("NOT_FOUND: No such site");
    expect(nothing.code).toBe(2);

    // the kill switch: no terminal and no --yes → refused, nothing changed
    const refused = await ws(["kill", "on", "--site", "edge"]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("refusing to turn the kill switch on for edge without confirmation");
    expect((await okJson(["sites", "show", "edge"])).killSwitch).toBe(false);
    const on = await ok(["kill", "on", "--site", "edge", "--yes"]);
    expect(on).toContain("Kill switch ON for site edge: every gate() call is denied");
    expect(await ok(["sites", "show", "edge"])).toMatch(/^kill switch\s+ON/m);
    const refusedOff = await ws(["kill", "off", "--site", "edge"]);
    expect(refusedOff.code).toBe(2);
    expect((await okJson(["sites", "show", "edge"])).killSwitch).toBe(true);
    const off = await okJson(["kill", "off", "--site", "edge", "--yes"]);
    expect(off).toMatchObject({ siteId: "edge", killSwitch: false, policy: { killSignal: false } });
    const [noSite, missingSite] = await Promise.all([ws(["kill", "on", "--yes"]), ws(["kill", "on", "--site", "nope", "--yes"])]);
    expect(noSite.code).toBe(2);
    expect(missingSite.code).toBe(4);

    expect((await ws(["sites", "rm", "edge"])).code).toBe(2);
    expect(await okJson(["sites", "rm", "edge", "--yes"])).toMatchObject({ siteId: "edge", deleted: true });
    expect((await ws(["sites", "show", "edge"])).code).toBe(4);
  });

  it("rules add (invalid field → exit 1 naming it), list, edit, disable, enable, rm", async () => {
    const invalid = await ws([
      "rules",
      "add",
      "--tag",
      "free",
      "--metric",
      "p95_latency",
      "--operator",
      "between",
      "--threshold",
      "500",
      "--action",
      "block",
      "--priority",
      "1",
    ]);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain("VALIDATION_FAILED");
    expect(invalid.stderr).toMatch(/operator \(--operator\): Invalid option/);
    const throttle = await ws([
      "rules",
      "add",
      "--tag",
      "pro",
      "--metric",
      "error_rate",
      "--operator",
      "gt",
      "--threshold",
      "0.05",
      "--action",
      "throttle",
      "--priority",
      "2",
    ]);
    expect(throttle.code).toBe(1);
    expect(throttle.stderr).toContain("actionValue (--action-value): throttle rules need an actionValue");
    const [noTarget, notNumber] = await Promise.all([
      ws(["rules", "add", "--metric", "rps", "--operator", "gt", "--threshold", "1", "--action", "block", "--priority", "1"]),
      ws([
        "rules",
        "add",
        "--tag",
        "free",
        "--metric",
        "rps",
        "--operator",
        "gt",
        "--threshold",
        "lots",
        "--action",
        "block",
        "--priority",
        "1",
      ]),
    ]);
    expect(noTarget.code).toBe(2);
    expect(noTarget.stderr).toContain("--tag <tag> or --all-traffic");
    expect(notNumber.code).toBe(2);
    expect(notNumber.stderr).toContain('--threshold must be a number, got "lots"');
    expect((await okJson<{ reflexRules: unknown[] }>(["rules"])).reflexRules).toEqual([]);

    const added = await ok([
      "rules",
      "add",
      "--tag",
      "free",
      "--metric",
      "p95_latency",
      "--operator",
      ">",
      "--threshold",
      "500",
      "--action",
      "block",
      "--priority",
      "1",
      "--site",
      "shop",
    ]);
    expect(added).toContain("when p95_latency > 500 then block free");
    const all = await okJson([
      "rules",
      "add",
      "--all-traffic",
      "--metric",
      "error_rate",
      "--metric-tag",
      "pro",
      "--operator",
      "gte",
      "--threshold",
      "0.5",
      "--action",
      "throttle",
      "--action-value",
      "0.5",
      "--priority",
      "2",
      "--cooldown-seconds",
      "10",
      "--disabled",
    ]);
    expect(all).toMatchObject({
      siteId: null,
      tagName: null,
      metric: "error_rate",
      metricTag: "pro",
      operator: "gte",
      threshold: 0.5,
      action: "throttle",
      actionValue: 0.5,
      priority: 2,
      cooldownSeconds: 10,
      enabled: false,
    });

    const list = await ok(["rules", "list"]);
    expect(tableRow(list, "ID")).toEqual(["ID", "PRI", "SITE", "TARGET", "CONDITION", "ACTION", "COOLDOWN", "ENABLED"]);
    const first = (await okJson<{ reflexRules: Array<{ id: string }> }>(["rules", "list", "--site", "shop"])).reflexRules;
    expect(first).toHaveLength(1);
    const id = first[0]!.id;
    expect(tableRow(list, id).slice(1)).toEqual(["1", "shop", "free", "p95_latency > 500", "block", "30 s", "yes"]);
    expect(tableRow(list, all.id).slice(1)).toEqual([
      "2",
      "(all)",
      "(all traffic)",
      "error_rate[pro] >= 0.5",
      "throttle x0.5",
      "10 s",
      "no",
    ]);

    expect(await okJson(["rules", "edit", id, "--threshold", "800", "--cooldown-seconds", "60", "--metric-tag", ""])).toMatchObject({
      id,
      threshold: 800,
      cooldownSeconds: 60,
      metricTag: null,
    });
    expect(await ok(["rules", "enable", all.id])).toContain(`Enabled rule ${all.id}`);
    expect((await okJson(["rules", "disable", id])).enabled).toBe(false);
    const badEdit = await ws(["rules", "edit", id, "--action-value", "2", "--action", "throttle"]);
    expect(badEdit.code).toBe(1);
    expect(badEdit.stderr).toContain("actionValue (--action-value)");
    const [missing, empty] = await Promise.all([ws(["rules", "rm", "rule_nope"]), ws(["rules", "edit", id])]);
    expect(missing.code).toBe(4);
    expect(empty.code).toBe(2);
    expect(await ok(["rules", "rm", id])).toContain(`Deleted rule ${id}`);
    expect((await okJson(["rules", "rm", all.id])).id).toBe(all.id);
    expect((await okJson<{ reflexRules: unknown[] }>(["rules"])).reflexRules).toEqual([]);
  });

  it("status after real SDK pulses; tail prints the rule firing, in text and JSON, and Ctrl-C exits 0", async () => {
    const sdk = new WaitState({
      publishKey: tenant.publishKey,
      secretKey: tenant.secretKey,
      baseUrl: cp.url,
      siteId: "live",
      instanceId: "cli-node-1",
    });
    const traffic = setInterval(() => {
      for (const tag of ["free", "pro"]) {
        sdk.gate(tag);
        sdk.reportLatency(40 + Math.random() * 20, tag);
      }
    }, 10);
    try {
      expect(await sdk.ready(15_000)).toBe(true);
      const status = await until(
        async () => {
          const r = await ws(["status", "--site", "live", "--json"]);
          if (r.code !== 0) return null;
          const s = JSON.parse(r.stdout);
          return s.window.instances >= 1 && s.tags.free?.calls > 0 && s.window.p95 !== null ? s : null;
        },
        15_000,
        "pulses in the site's status",
      );
      expect(status).toMatchObject({
        siteId: "live",
        policy: { version: expect.any(Number), killSignal: false, status: "ok" },
        timing: { pulseIntervalMs: 1000 },
      });
      expect(status.window.rps).toBeGreaterThan(0);
      expect(status.window.p95).toBeGreaterThanOrEqual(30);
      expect(status.window.p95).toBeLessThan(200);

      const text = await ok(["status", "--site", "live"]);
      expect(text).toMatch(/^site\s+live/m);
      expect(text).toMatch(/^fleet\s+1 instance, \d+ pulses? in the last 30 s$/m);
      expect(text).toMatch(/calls\/s, \d+ errors \(0%\), latency mean [\d.]+ ms, p50 [\d.]+, p95 [\d.]+, p99 [\d.]+ ms/);
      expect(tableRow(text, "TAG")).toEqual([
        "TAG",
        "CALLS/S",
        "CALLS",
        "ERRORS",
        "ERR %",
        "MEAN MS",
        "P50 MS",
        "P95 MS",
        "P99 MS",
        "LIMIT",
      ]);
      expect(tableRow(text, "free").at(-1)).toBe("unlimited");
      expect(text).toContain("No reflex rules apply to this site");

      // two tails (text and JSON), then a rule that holds whenever there is traffic. Their poll interval
      // (used only without an event stream) is ten minutes: what they print below came over the stream.
      const tail = spawnCli(["tail", "--site", "live", "--interval", "600000"], { env: { WAITSTATE_CONFIG: configFile } });
      const tailJson = spawnCli(["tail", "--site", "live", "--json", "--interval", "600000"], { env: { WAITSTATE_CONFIG: configFile } });
      running.push(tail, tailJson);
      await until(
        () => /policy v\d+ \(current\)/.test(tail.stdout()) && tailJson.stdout().includes('"current":true'),
        10_000,
        "both tails' first line",
      );
      const rule = await okJson([
        "rules",
        "add",
        "--tag",
        "free",
        "--metric",
        "rps",
        "--operator",
        "gte",
        "--threshold",
        "0",
        "--action",
        "block",
        "--cooldown-seconds",
        "0",
        "--priority",
        "1",
        "--site",
        "live",
      ]);
      const started = Date.now();
      await until(
        () => tail.stdout().includes(`fired    ${rule.id}  block free  rps`),
        10_000,
        `tail printing ${rule.id} firing:\n${tail.stdout()}${tail.stderr()}`,
      );
      expect(Date.now() - started).toBeLessThan(8000);
      await until(() => /policy v\d+ {2}status ok {2}free=0/.test(tail.stdout()), 5000, "tail printing the new policy");
      const events = await until(
        () => {
          const lines = tailJson
            .stdout()
            .trim()
            .split("\n")
            .map((l) => JSON.parse(l));
          return lines.some((l) => l.type === "rule.fired") && lines.some((l) => l.type === "policy" && l.policy.tagMaxWeights.free === 0)
            ? lines
            : null;
        },
        10_000,
        "tail --json printing the fire",
      );
      expect(events[0]).toMatchObject({ type: "policy", siteId: "live", current: true });
      expect(events.find((l) => l.type === "rule.fired")).toMatchObject({
        siteId: "live",
        ruleId: rule.id,
        tagName: "free",
        metric: "rps",
        operator: "gte",
        threshold: 0,
        value: expect.any(Number),
      });

      const applied = await ok(["status", "--site", "live"]);
      expect(applied).toMatch(new RegExp(`free: 0 \\(blocked\\) {2}← ${rule.id} \\(rps >= 0\\)`));
      expect(tableRow(applied, rule.id).slice(1, 5)).toEqual(["1", "free", "rps >= 0", "block"]);
      expect(tableRow(applied, rule.id).at(-1)).toMatch(/^applied since \d\d:\d\d:\d\d$/);
      expect(applied).toMatch(new RegExp(`fired {4}${rule.id} {2}block free {2}rps [\\d.]+ >= 0`));

      tail.child.kill("SIGINT");
      tailJson.child.kill("SIGINT");
      const [end, endJson] = await Promise.all([tail.exited, tailJson.exited]);
      expect(end.code).toBe(0);
      expect(endJson.code).toBe(0);
      expect(end.stderr).toContain("Following site live");
      expect(end.stderr).not.toContain("polling");
      expect(endJson.stderr).toBe("");
      seen.push(end, endJson);

      const gone = await ws(["tail", "--site", "nope"]);
      expect(gone.code).toBe(4);
    } finally {
      clearInterval(traffic);
      await sdk.shutdown();
    }
  });

  it("audit: the changes above, filtered by kind and site, with a cursor", async () => {
    const kills = await okJson<{ entries: Array<{ kind: string; siteId: string; actor: { type: string } }>; nextCursor: string | null }>([
      "audit",
      "--kind",
      "kill.*",
      "--since",
      "1h",
    ]);
    expect(kills.entries.map((e) => e.kind)).toEqual(["kill.off", "kill.on"]);
    expect(kills.entries[0]).toMatchObject({ siteId: "edge", actor: { type: "token" } });
    const table = await ok(["audit", "--site", "edge"]);
    expect(tableRow(table, "TIME")).toEqual(["TIME", "KIND", "SITE", "ACTOR", "TARGET", "CHANGE"]);
    expect(table).toMatch(/kill\.on\s+edge\s+token:\S+\s+edge\s+killSwitch: false → true/);
    const page = await ws(["audit", "--limit", "1"]);
    expect(page.code).toBe(0);
    expect(page.stdout.trim().split("\n")).toHaveLength(2);
    const cursor = /--cursor (\S+)/.exec(page.stderr)?.[1];
    expect(cursor).toBeDefined();
    const next = await okJson<{ entries: Array<{ id: string }> }>(["audit", "--limit", "1", "--cursor", cursor!]);
    expect(next.entries).toHaveLength(1);
    // automatic entries: the rule the status test added fired on site "live" (actor system, with the value)
    const fired = await until(
      async () => (await okJson<{ entries: Array<Record<string, any>> }>(["audit", "--site", "live", "--kind", "rule.fired"])).entries[0],
      10_000,
      "a rule.fired audit entry",
    );
    expect(fired).toMatchObject({
      kind: "rule.fired",
      siteId: "live",
      actor: { type: "system" },
      target: expect.stringMatching(/^rule_/),
      details: { metric: "rps", operator: "gte", threshold: 0, value: expect.any(Number) },
    });
    const firedTable = await ok(["audit", "--site", "live", "--kind", "rule.*"]);
    expect(firedTable).toMatch(new RegExp(`rule\\.fired\\s+live\\s+system\\s+${fired.target}\\s+rps [\\d.]+ >= 0: block free`));
    const [badKind, badSince] = await Promise.all([ws(["audit", "--kind", "nonsense"]), ws(["audit", "--since", "last tuesday-ish"])]);
    expect(badKind.code).toBe(1);
    expect(badKind.stderr).toContain("kind");
    expect(badSince.code).toBe(2);
  });

  it("webhooks add (secret once), list, edit, deliveries, rm", async () => {
    const added = await ok(["webhooks", "add", "http://127.0.0.1:9/hooks", "--events", "kill.*,rule.fired"]);
    const id = /webhook (wh_\S+):/.exec(added)?.[1];
    expect(id).toBeDefined();
    expect(added).toMatch(/^secret\s+whsec_\S+$/m);
    const list = await ok(["webhooks"]);
    expect(tableRow(list, "ID")).toEqual(["ID", "URL", "EVENTS", "ENABLED", "CREATED"]);
    expect(tableRow(list, id!).slice(1, 4)).toEqual(["http://127.0.0.1:9/hooks", "kill.*,rule.fired", "yes"]);
    expect(list).not.toContain("whsec_");
    expect(await okJson(["webhooks", "edit", id!, "--events", "*", "--disable"])).toMatchObject({ id, events: ["*"], enabled: false });
    expect(await ok(["webhooks", "edit", id!, "--enable", "--endpoint", "http://127.0.0.1:9/other"])).toContain(
      `Updated webhook ${id}: http://127.0.0.1:9/other for * (enabled)`,
    );
    await ok(["kill", "on", "--site", "live", "--yes"]);
    await ok(["kill", "off", "--site", "live", "--yes"]);
    const deliveries = await until(
      async () => {
        const d = await okJson<{ deliveries: Array<{ kind: string; status: string }> }>(["webhooks", "deliveries", id!]);
        return d.deliveries.some((x) => x.kind === "kill.on") ? d : null;
      },
      10_000,
      "a kill.on delivery",
    );
    expect(deliveries.deliveries.map((d) => d.kind)).toEqual(expect.arrayContaining(["kill.on", "kill.off"]));
    const table = await ok(["webhooks", "deliveries", id!]);
    expect(tableRow(table, "ID")).toEqual(["ID", "CREATED", "EVENT", "STATUS", "ATTEMPTS", "LAST", "NEXT / DELIVERED"]);
    expect(table).toMatch(/kill\.on\s+(pending|failed)/);

    const [badUrl, missing] = await Promise.all([
      ws(["webhooks", "add", "ftp://example.com/x"]),
      ws(["webhooks", "deliveries", "wh_nope"]),
    ]);
    expect(badUrl.code).toBe(1);
    expect(badUrl.stderr).toContain("url (<url>)");
    expect(missing.code).toBe(4);
    expect(await ok(["webhooks", "rm", id!])).toContain(`Deleted webhook ${id}`);
    expect((await okJson<{ webhooks: unknown[] }>(["webhooks", "list"])).webhooks).toEqual([]);
  });

  it.runIf(existsSync(SCRIPT_BIN))(
    "on a terminal: kill asks and obeys the answer, colours unless NO_COLOR, the token prompt does not echo",
    async () => {
      const env = { WAITSTATE_CONFIG: configFile };
      const no = await runInTerminal(["kill", "on", "--site", "live"], { env, answers: [["[y/N]", "n\r"]] });
      expect(no.code).toBe(2);
      expect(no.stdout).toContain("Turn the kill switch ON for site live?");
      expect(no.stdout).toContain("cancelled: nothing was changed");
      expect((await okJson(["sites", "show", "live"])).killSwitch).toBe(false);

      const yes = await runInTerminal(["kill", "on", "--site", "live"], { env, answers: [["[y/N]", "y\r"]] });
      expect(yes.code).toBe(0);
      expect(yes.stdout).toContain("\x1b[31mKill switch ON\x1b[0m for site live");
      expect((await okJson(["sites", "show", "live"])).killSwitch).toBe(true);

      const plain = await runInTerminal(["kill", "off", "--site", "live"], {
        env: { ...env, NO_COLOR: "1" },
        answers: [["[y/N]", "yes\r"]],
      });
      expect(plain.code).toBe(0);
      expect(plain.stdout).toContain("Kill switch off for site live (policy v");
      // biome-ignore lint/suspicious/noControlCharactersInRegex: matches terminal escape sequences
      expect(plain.stdout).not.toMatch(/\x1b\[(1|2|3\d)(;\d+)?m/);
      expect((await okJson(["sites", "show", "live"])).killSwitch).toBe(false);

      const otherConfig = path.join(dir, "tty", "config.json");
      const login = await runInTerminal(["login", "--url", cp.url], {
        env: { WAITSTATE_CONFIG: otherConfig },
        answers: [["Management token: ", `${tenant.managementToken}\r`]],
      });
      expect(login.code).toBe(0);
      expect(login.stdout).toContain(`Logged in to ${cp.url}`);
      expect(login.stdout).not.toContain(tenant.managementToken);
      expect(JSON.parse(readFileSync(otherConfig, "utf8")).token).toBe(tenant.managementToken);
    },
  );

  it("logout forgets the login (exit 3 after); output has no colour codes without a terminal", async () => {
    expect(await ok(["logout"])).toContain(`Logged out: removed ${configFile}`);
    expect(existsSync(configFile)).toBe(false);
    const after = await ws(["sites"]);
    expect(after.code).toBe(3);
    expect(await ok(["logout"])).toContain("Not logged in");
    expect(seen.length).toBeGreaterThan(50);
    for (const r of seen) {
      expect(r.stdout).not.toContain("\x1b[");
      expect(r.stderr).not.toContain("\x1b[");
    }
  });
});
