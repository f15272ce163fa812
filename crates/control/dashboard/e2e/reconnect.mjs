// The dashboard while its control plane restarts: the open graph page shows the
// "Reconnecting" banner and, once the control plane is back, hides it and draws the graph
// again, without a reload. The harness (crates/cli/tests/dashboard.rs) restarts the control
// plane when this script prints READY, and tells nothing else: the page must notice.
//
//   WEFT_DASHBOARD=http://127.0.0.1:15080 WEFT_SCREENSHOTS=/tmp/shots node e2e/reconnect.mjs
//
// Prints READY, BANNER, RECOVERED as it sees them; exits 1 with the reason on a failure.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = (process.env.WEFT_DASHBOARD || '').replace(/\/+$/, '');
const SHOTS = process.env.WEFT_SCREENSHOTS || path.join(os.tmpdir(), 'weft-dashboard-shots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!BASE) {
  console.error('reconnect.mjs: set WEFT_DASHBOARD');
  process.exit(2);
}
fs.mkdirSync(SHOTS, { recursive: true });

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-e2e-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1440, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});
const page = context.pages()[0] || (await context.newPage());
async function fail(message) {
  console.error(`reconnect.mjs: ${message}`);
  await page.screenshot({ path: path.join(SHOTS, 'failed-reconnect.png'), fullPage: true }).catch(() => {});
  await context.close().catch(() => {});
  process.exit(1);
}

const banner = page.locator('[data-testid="connection-banner"]');
const edges = page.locator('[data-testid="edge"]');
try {
  await page.goto(`${BASE}/#/graph?window=30s`);
  await edges.first().waitFor({ state: 'attached', timeout: 60000 });
  // A marker a reload would lose.
  await page.evaluate(() => { window.__weftNoReload = true; });
  console.log('READY');
  await banner.waitFor({ state: 'visible', timeout: 60000 });
  const text = (await banner.textContent()) || '';
  if (!/reconnect/i.test(text)) await fail(`the banner says ${JSON.stringify(text)}`);
  await page.screenshot({ path: path.join(SHOTS, 'reconnecting.png') });
  console.log('BANNER');
  await banner.waitFor({ state: 'hidden', timeout: 90000 });
  await edges.first().waitFor({ state: 'attached', timeout: 60000 });
  const kept = await page.evaluate(() => window.__weftNoReload === true);
  if (!kept) await fail('the page was reloaded');
  console.log('RECOVERED');
} catch (e) {
  await fail(e.message);
}
await context.close();
fs.rmSync(userDataDir, { recursive: true, force: true });
