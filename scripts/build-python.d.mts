export const PYTHON: string;
export const SDK_DIR: string;
export const PYTHON_INSTALL_COMMAND: string;
/** null when the Python suite can run here, else why not. */
export function missing(): string | null;
/** Builds sdk-python/waitstate/_native*.so in place; resolves the exit code. */
export function buildNative(): Promise<number>;
export function pytest(args?: string[], options?: { capture?: boolean }): Promise<{ code: number; output: string }>;
