// End-to-end check of the dashboard against a real `weft control --dashboard` while the seed
// mesh (ingress gateway → bff-service → recommendation-service v1/v2) gets continuous traffic.
//
//   WEFT_DASHBOARD=http://127.0.0.1:15080 WEFT_SCREENSHOTS=/tmp/shots node e2e/seed.mjs
//
// Needs `npm ci` in crates/control/dashboard (playwright-core) and Chromium at /usr/bin/chromium
// (or CHROMIUM=/path). The harness must also have applied a VirtualService `bad-subset` in
// namespace default routing to the undefined subset v9 of recommendation-service.
// Prints one line per step passed; exits 1 with the reason on the first failure.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = (process.env.WEFT_DASHBOARD || '').replace(/\/+$/, '');
const SHOTS = process.env.WEFT_SCREENSHOTS || path.join(os.tmpdir(), 'weft-dashboard-shots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!BASE) {
  console.error('seed.mjs: set WEFT_DASHBOARD, e.g. WEFT_DASHBOARD=http://127.0.0.1:15080');
  process.exit(2);
}
fs.mkdirSync(SHOTS, { recursive: true });

const NS = 'default';
const BFF = `svc:${NS}/bff-service`;
const REC = `svc:${NS}/recommendation-service`;
const V1 = `wl:${NS}/recommendation-v1`;
const V2 = `wl:${NS}/recommendation-v2`;
const started = Date.now();
const secs = (ms) => `${(ms / 1000).toFixed(1)}s`;

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-e2e-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1440, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});
const page = context.pages()[0] || (await context.newPage());
page.setDefaultTimeout(15000);
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(e.message));

async function finish(code) {
  await context.close().catch(() => {});
  fs.rmSync(userDataDir, { recursive: true, force: true });
  process.exit(code);
}

let stepNo = 0;
async function step(name, fn) {
  stepNo += 1;
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok ${stepNo} - ${name} (${secs(Date.now() - t0)})`);
  } catch (e) {
    console.error(`not ok ${stepNo} - ${name} (${secs(Date.now() - t0)})`);
    console.error(`  ${String(e && e.message ? e.message : e).split('\n').join('\n  ')}`);
    const shot = path.join(SHOTS, `failed-step-${stepNo}.png`);
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    console.error(`  page: ${page.url()}\n  screenshot: ${shot}`);
    await finish(1);
  }
}

/** Calls fn every interval until it returns a truthy value; fails with the last detail after timeout. */
async function poll(what, timeoutMs, fn, intervalMs = 1000) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const v = await fn((detail) => (last = detail));
      if (v) return v;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${secs(timeoutMs)} waiting for ${what}${last ? `; last seen: ${last}` : ''}`);
    await page.waitForTimeout(intervalMs);
  }
}

const shot = (name) => page.screenshot({ path: path.join(SHOTS, name) });

async function go(hash) {
  await page.goto(`${BASE}/${hash}`);
  await page.waitForSelector('#main');
}

/** The graph as drawn: nodes and edges with their data attributes. */
async function readGraph() {
  return page.evaluate(() => {
    const num = (v) => (v === undefined || v === '' ? NaN : Number(v));
    const nodes = [...document.querySelectorAll('[data-testid="node"]')].map((n) => ({ ...n.dataset, rps: num(n.dataset.rps) }));
    const edges = [...document.querySelectorAll('[data-testid="edge"]')].map((e) => ({ id: e.dataset.id, source: e.dataset.source, target: e.dataset.target, rps: num(e.dataset.rps), errorRate: num(e.dataset.errorRate), health: e.dataset.health }));
    return { nodes, edges };
  });
}

const fmtEdges = (edges) => (edges.length ? edges.map((e) => `${e.source}>${e.target} rps=${e.rps} err=${e.errorRate} ${e.health}`).join('; ') : 'none');

async function openTraffic() {
  await go(`#/traffic/${NS}/recommendation-service`);
  await page.waitForSelector('[data-testid="weight-v1"]');
  await page.waitForSelector('[data-testid="weight-v2"]');
  if (!(await page.locator('[data-testid="apply"]').isEnabled())) {
    const reason = (await page.locator('[data-testid="not-editable"]').allTextContents()).join(' ');
    assert.fail(`the traffic page is not editable: ${reason || 'no reason shown'}`);
  }
}

async function applyAndExpect(button, pattern) {
  await page.click(`[data-testid="${button}"]`);
  const status = page.locator('[data-testid="traffic-status"]');
  await poll(`the traffic status to match ${pattern}`, 15000, async (seen) => {
    const text = (await status.textContent()) || '';
    seen(JSON.stringify(text));
    return pattern.test(text);
  }, 250);
  return status.textContent();
}

async function graphWindow(win) {
  await go(`#/graph`);
  await page.waitForSelector('#graph-window');
  await page.selectOption('#graph-window', win);
  await page.waitForFunction((w) => location.hash.includes(`window=${w}`), win);
}

// ---------------------------------------------------------------------------------------------

await step('the graph shows gateway → bff-service → recommendation-service → v1 and v2 with traffic', async () => {
  await go('#/graph?window=1m');
  await poll('the seed edges, all with rps > 0', 60000, async (seen) => {
    const { nodes, edges } = await readGraph();
    const kind = new Map(nodes.map((n) => [n.id, n]));
    const find = (pred) => edges.find((e) => e.rps > 0 && pred(e));
    const want = {
      'gateway → svc bff-service': find((e) => kind.get(e.source)?.kind === 'gateway' && e.target === BFF),
      "bff-service's workload → svc recommendation-service": find((e) => kind.get(e.source)?.kind === 'workload' && kind.get(e.source)?.service === 'bff-service' && e.target === REC),
      [`${REC} → ${V1}`]: find((e) => e.source === REC && e.target === V1),
      [`${REC} → ${V2}`]: find((e) => e.source === REC && e.target === V2),
    };
    const missing = Object.entries(want).filter(([, e]) => !e).map(([k]) => k);
    seen(`missing ${missing.join(', ')}; edges: ${fmtEdges(edges)}`);
    return missing.length === 0;
  });
  await shot('graph.png');
});

await step('traffic page: weights v1=10 v2=90 applied, the graph carries 80–100 % on v2', async () => {
  await openTraffic();
  await page.setChecked('[data-testid="abort-enabled"]', false);
  await page.setChecked('[data-testid="delay-enabled"]', false);
  await page.fill('[data-testid="weight-v1"]', '10');
  await page.fill('[data-testid="weight-v2"]', '90');
  const text = await applyAndExpect('apply', /Applied: VirtualService \S+ \(resourceVersion \S+\)/);
  await shot('traffic.png');
  await graphWindow('10s');
  await poll('v2 to carry 80–100 % of the version edges\u2019 rps', 45000, async (seen) => {
    const { edges } = await readGraph();
    const v1 = edges.find((e) => e.source === REC && e.target === V1);
    const v2 = edges.find((e) => e.source === REC && e.target === V2);
    const r1 = v1 && v1.rps > 0 ? v1.rps : 0;
    const r2 = v2 && v2.rps > 0 ? v2.rps : 0;
    const share = r1 + r2 > 0 ? r2 / (r1 + r2) : NaN;
    seen(`v1 ${r1} rps, v2 ${r2} rps, v2 share ${share.toFixed(3)} (after "${text}")`);
    return r2 > 0 && share >= 0.8 && share <= 1;
  });
  await shot('graph-split.png');
});

await step('traffic page: abort 500 at 100 % makes the edge into recommendation-service fail, Reset heals it', async () => {
  await openTraffic();
  await page.setChecked('[data-testid="abort-enabled"]', true);
  await page.fill('[data-testid="abort-status"]', '500');
  await page.fill('[data-testid="abort-percentage"]', '100');
  await applyAndExpect('apply', /Applied: VirtualService \S+ \(resourceVersion \S+\)/);
  await graphWindow('10s');
  await poll(`the edges into ${REC} to be failing with errorRate >= 0.9`, 45000, async (seen) => {
    const into = (await readGraph()).edges.filter((e) => e.target === REC && e.rps > 0);
    seen(fmtEdges(into));
    return into.length > 0 && into.every((e) => e.health === 'failing' && e.errorRate >= 0.9);
  });
  await shot('graph-fault.png');
  await openTraffic();
  await applyAndExpect('reset', /^Reset/);
  await graphWindow('10s');
  await poll(`the edges into ${REC} to be healthy again with errorRate < 0.1`, 45000, async (seen) => {
    const into = (await readGraph()).edges.filter((e) => e.target === REC && e.rps > 0);
    seen(fmtEdges(into));
    return into.length > 0 && into.every((e) => e.health === 'healthy' && e.errorRate < 0.1);
  });
});

await step('traces: bff-service.default with error=true lists only error traces; one opens as a waterfall', async () => {
  await go('#/traces');
  await poll('bff-service.default in the service list', 15000, async (seen) => {
    const opts = await page.locator('#trace-service option').allTextContents();
    seen(opts.join(', '));
    return opts.includes('bff-service.default');
  }, 500);
  await page.selectOption('#trace-service', 'bff-service.default');
  await page.fill('#trace-tags', 'error=true');
  await page.selectOption('#trace-lookback', '1h');
  await page.fill('#trace-min', '');
  await page.fill('#trace-max', '');
  const results = page.locator('[data-testid="trace-result"]');
  await poll('at least one trace with error=true', 30000, async (seen) => {
    await page.click('#trace-find');
    await page.waitForFunction(() => !document.querySelector('.trace-results')?.textContent.includes('Searching'), null, { timeout: 10000 });
    const alert = await page.locator('.trace-results [role="alert"]').allTextContents();
    if (alert.length) throw new Error(`the search failed: ${alert.join(' ')}`);
    const n = await results.count();
    seen(`${n} results`);
    return n > 0;
  }, 3000);
  const hash = await page.evaluate(() => location.hash);
  assert.match(hash, /service=bff-service\.default/, `the search is not in the URL: ${hash}`);
  assert.match(hash, /tags=error%3Dtrue/, `the tags are not in the URL: ${hash}`);
  const flags = await results.evaluateAll((els) => els.map((e) => e.dataset.error));
  assert.ok(flags.length >= 1, 'no trace listed');
  assert.ok(flags.every((f) => f === 'true'), `some listed traces have no span with error=true: data-error = ${flags.join(',')}`);
  assert.ok((await page.locator('[data-testid="trace-dot"]').count()) >= 1, 'the scatter plot has no dot');
  await shot('traces.png');
  await results.first().click();
  await poll('a waterfall with at least 3 span rows', 15000, async (seen) => {
    const n = await page.locator('[data-testid="span-row"]').count();
    const heading = await page.locator('h1').first().textContent().catch(() => '');
    seen(`${n} span rows; heading ${JSON.stringify(heading)}`);
    return n >= 3;
  }, 500);
  await page.locator('[data-testid="span-row"]').first().click();
  await page.waitForSelector('.span-detail:not([hidden]) .kv-table');
  await shot('trace.png');
});

await step('traces: a bad min duration shows an inline alert', async () => {
  await go('#/traces?service=bff-service.default&lookback=1h&limit=20');
  await page.waitForSelector('#trace-min');
  await page.fill('#trace-min', 'soon');
  await page.click('#trace-find');
  const alert = page.locator('.trace-results [role="alert"]');
  await alert.waitFor({ state: 'visible', timeout: 15000 });
  const text = (await alert.textContent()) || '';
  assert.ok(text.trim().length > 0, 'the alert is empty');
  assert.match(await page.evaluate(() => location.hash), /minDuration=soon/);
});

await step('config: VirtualService default/bad-subset is listed with finding IST0101', async () => {
  await go('#/config');
  const row = page.locator(`[data-testid="resource-row"][data-kind="VirtualService"][data-namespace="${NS}"][data-name="bad-subset"]`);
  await poll('VirtualService default/bad-subset in the resource table', 25000, async (seen) => {
    const names = await page.locator('[data-testid="resource-row"]').evaluateAll((els) => els.map((e) => `${e.dataset.kind}/${e.dataset.namespace}/${e.dataset.name}`));
    seen(names.join(', ') || 'no rows');
    return (await row.count()) === 1;
  });
  await row.locator('a').click();
  const finding = page.locator('[data-testid="finding"][data-code="IST0101"]');
  await poll('finding IST0101 on bad-subset', 10000, async (seen) => {
    const codes = await page.locator('[data-testid="finding"]').evaluateAll((els) => els.map((e) => e.dataset.code));
    seen(codes.join(', ') || 'no findings');
    return (await finding.count()) >= 1;
  }, 500);
  await page.locator('.yaml tr.marked').first().waitFor();
  await shot('config.png');
});

await step('routes: HTTPRoute default/bff-ingress with its parents\' status and its backends\' shares', async () => {
  await go('#/routes');
  const row = page.locator(`[data-testid="route-row"][data-kind="HTTPRoute"][data-namespace="${NS}"][data-name="bff-ingress"]`);
  await poll('HTTPRoute default/bff-ingress in the routes table', 15000, async () => (await row.count()) === 1);
  const states = await row.locator('[data-testid="route-parent"]').evaluateAll((els) => els.map((e) => `${e.textContent}=${e.dataset.state}`));
  // Its Gateway accepted it (a backend without a Service shows as the reason); a Gateway
  // that does not exist gives no status at all.
  assert.equal(states.length, 2, states.join(', '));
  assert.match(states[0], /default\/bff-gateway/, states.join(', '));
  assert.match(states[0], /BackendNotFound=refused$/, states.join(', '));
  assert.match(states[1], /^\? default\/missing-gateway=none$/, states.join(', '));
  await row.locator('a').click();
  const backends = page.locator('[data-testid="route-backend"]');
  await backends.first().waitFor();
  const shares = await backends.evaluateAll((els) => els.map((e) => `${e.dataset.name}=${e.dataset.percent}`));
  assert.deepEqual(shares, ['bff-service=75', 'bff-service-canary=25']);
  const text = (await page.locator('[data-testid="route-rule"]').textContent()) || '';
  assert.match(text, /PathPrefix \/api/, text);
  await shot('routes.png');
});

await step('service page of recommendation-service shows at least one chart', async () => {
  await go(`#/service/${NS}/recommendation-service`);
  await poll('a uPlot chart', 20000, async (seen) => {
    const n = await page.locator('[data-testid="panel"] .uplot').count();
    seen(`${n} charts`);
    return n >= 1;
  }, 500);
  await shot('service.png');
});

await step('live requests of bff-service (from its workload page) lists at least one request', async () => {
  await go(`#/workload/${NS}/bff-service`);
  await page.getByRole('link', { name: 'Live requests' }).click();
  await page.waitForFunction(() => location.hash.startsWith('#/tap/'));
  await poll('a request in the tap table', 20000, async (seen) => {
    const n = await page.locator('[data-testid="tap-row"]').count();
    seen(`${n} rows`);
    return n >= 1;
  }, 500);
  await shot('tap.png');
});

await step('traffic page: weights v1=-5 v2=105 show a field error inline', async () => {
  await openTraffic();
  await page.setChecked('[data-testid="abort-enabled"]', false);
  await page.setChecked('[data-testid="delay-enabled"]', false);
  await page.fill('[data-testid="weight-v1"]', '-5');
  await page.fill('[data-testid="weight-v2"]', '105');
  await page.click('[data-testid="apply"]');
  const errors = page.locator('[data-testid="field-error"]');
  await errors.first().waitFor({ state: 'visible', timeout: 15000 });
  const fields = await errors.evaluateAll((els) => els.map((e) => e.dataset.field));
  assert.ok(fields.some((f) => f.startsWith('weights')), `no field error for the weights: ${fields.join(', ')}`);
  const status = (await page.locator('[data-testid="traffic-status"]').textContent()) || '';
  assert.doesNotMatch(status, /^Applied/, `the invalid weights were applied: ${status}`);
});

await step('no script error and no reconnect banner', async () => {
  assert.ok(await page.locator('[data-testid="connection-banner"]').isHidden(), 'the reconnect banner is showing');
  assert.deepEqual(pageErrors, [], `script errors in the page: ${pageErrors.join(' | ')}`);
});

console.log(`${stepNo} passed, 0 failed in ${secs(Date.now() - started)}; screenshots in ${SHOTS}`);
await finish(0);
