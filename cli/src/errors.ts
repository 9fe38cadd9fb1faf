/**
 * Exit codes (documented in `waitstate --help` and docs/cli.md) and the one
 * error type commands throw. Anything else thrown is a bug and exits 1.
 */
export const EXIT = Object.freeze({
  OK: 0,
  /** The API reported a failure (4xx other than auth/not found, 5xx), or an unexpected local failure. */
  FAILURE: 1,
  /** Bad flags, missing arguments, unknown command, or a confirmation refused. */
  USAGE: 2,
  /** Not logged in, or the token was rejected (401, 403 FORBIDDEN). */
  AUTH: 3,
  /** The thing asked for does not exist (404). */
  NOT_FOUND: 4,
  /** The control plane could not be reached, or the URL is not a WaitState control plane. */
  UNREACHABLE: 5,
});
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class CliError extends Error {
  constructor(
    readonly exitCode: ExitCode,
    message: string,
    /** Extra lines printed under the message (hints, validation issues). */
    readonly details: string[] = [],
    /** The API's error, when the API reported it. */
    readonly api?: { status: number; code: string; message: string },
  ) {
    super(message);
    this.name = "CliError";
  }
}

export const usageError = (message: string, hint?: string) => new CliError(EXIT.USAGE, message, hint ? [hint] : []);
