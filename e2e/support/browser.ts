/**
 * Headless Chromium for the dashboard's browser tests: Debian's `chromium`
 * driven by playwright-core (no browser download), and the screenshots that
 * document the dashboard, written only when WRITE_SCREENSHOTS=1 so ordinary
 * runs never rewrite the committed files.
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const SCREENSHOT_DIR = path.join(ROOT, "docs", "screenshots");
export const WRITE_SCREENSHOTS = process.env.WRITE_SCREENSHOTS === "1";
/** Debian's package; CHROMIUM_PATH points elsewhere. @default "/usr/bin/chromium" */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
}

/** Saves a full-page PNG as docs/screenshots/<name>.png when WRITE_SCREENSHOTS=1. */
export async function screenshot(page: Page, name: string, options: { fullPage?: boolean } = {}): Promise<void> {
  if (!WRITE_SCREENSHOTS) return;
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: options.fullPage ?? true, animations: "disabled" });
}

/** How far the page is wider than the viewport (0: no horizontal scrolling). */
export function horizontalOverflow(page: Page): Promise<number> {
  return page.evaluate(() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - window.innerWidth);
}
