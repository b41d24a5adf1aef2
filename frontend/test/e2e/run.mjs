// End-to-end tests of the page in Debian's Chromium, driven by playwright-core, against the
// real API (which serves the built page from STATIC_DIR) on real PostgreSQL and Redis.
//
//   CACHEME_URL=http://127.0.0.1:8090 npm run test:e2e
//
// Environment:
//   CACHEME_URL      base URL of the API serving the page (required)
//   CACHEME_TOKEN    bearer token for writes, when the API requires one (optional)
//   CHROMIUM_PATH    browser binary (default /usr/bin/chromium)
//   E2E_ONLY         run only tests whose name contains this text, after the page load (optional)
// Screenshots go to frontend/test-results/. Exits non-zero when a test fails; the last
// line is "N passed, N failed, N skipped".
import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const OUT = path.resolve(here, '../../test-results');
const rawBase = (process.env.CACHEME_URL ?? '').trim();
if (!rawBase) {
  console.error('CACHEME_URL is not set: point it at the CacheMe API serving the built page (STATIC_DIR=frontend/dist).');
  console.log('0 passed, 1 failed');
  process.exit(2);
}
const BASE = rawBase.replace(/\/+$/, '');
const TOKEN = process.env.CACHEME_TOKEN ?? '';
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ONLY = process.env.E2E_ONLY ?? '';
const allowedOrigins = new Set([new URL(BASE).origin]);
if (process.env.PUBLIC_API_BASE) {
  try {
    allowedOrigins.add(new URL(process.env.PUBLIC_API_BASE).origin);
  } catch {
    // a relative base is the same origin
  }
}

// ------------------------------------------------------------------ tiny harness

/** @type {{name: string, fn: () => Promise<void>}[]} */
const tests = [];
const test = (name, fn, opts = {}) => tests.push({ name, fn, always: Boolean(opts.always) });

class Skip extends Error {}
const skip = (why) => {
  throw new Skip(why);
};

function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]);
}

/** Direct calls to the API from Node, for set-up and feature detection. */
async function apiGet(pathname) {
  const res = await fetch(`${BASE}${pathname}`, { headers: { Accept: 'application/json' } });
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  return { status: res.status, body };
}

async function features() {
  const entry = await apiGet('/cache/entries/1');
  const missing = (r) => r.status === 405 || (r.status === 404 && r.body?.detail !== 'Product not found');
  const doc = await apiGet('/openapi.json');
  const paths = doc.status === 200 && doc.body?.paths ? doc.body.paths : {};
  const stats = await apiGet('/cache/stats');
  const product = await fetch(`${BASE}/products/1`);
  await product.arrayBuffer();
  return {
    serverTiming: product.headers.has('server-timing'),
    entries: !missing(entry),
    put: Boolean(paths['/products/{id}']?.put),
    patch: Boolean(paths['/products/{id}']?.patch),
    create: Boolean(paths['/products']?.post),
    remove: Boolean(paths['/products/{id}']?.delete),
    dbQueries: typeof stats.body?.app_stats?.db_queries === 'number',
  };
}

// ------------------------------------------------------------------ preflight

try {
  const res = await fetch(`${BASE}/`, { headers: { Accept: 'text/html' }, signal: AbortSignal.timeout(10_000) });
  const body = await res.text();
  if (!res.ok || !/<html/i.test(body)) {
    console.error(`${BASE}/ did not answer the page (HTTP ${res.status}): start the API with STATIC_DIR=frontend/dist after npm run build.`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
} catch (e) {
  console.error(`Cannot reach CACHEME_URL=${BASE}: ${e instanceof Error ? e.message : e}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

// ------------------------------------------------------------------ browser

mkdirSync(OUT, { recursive: true });
if (!existsSync(CHROMIUM)) {
  console.error(`No browser at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium) or set CHROMIUM_PATH.`);
  console.log('0 passed, 1 failed');
  process.exit(2);
}
const profile = mkdtempSync(path.join(tmpdir(), 'cacheme-e2e-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-quic',
    '--no-first-run',
    '--disable-sync',
  ],
  viewport: { width: 1280, height: 900 },
});
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(10_000);

const external = [];
const pageErrors = [];
const consoleErrors = [];
const dialogs = [];
/** @type {string[]} */
const requests = [];
await context.route('**/*', (route) => {
  const url = new URL(route.request().url());
  if (url.protocol === 'data:' || url.protocol === 'blob:' || allowedOrigins.has(url.origin)) return route.continue();
  external.push(url.href);
  return route.abort();
});
page.on('request', (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
page.on('pageerror', (e) => pageErrors.push(e.message));
page.on('console', (m) => {
  // Chromium logs every non-2xx fetch; the tests provoke 404s and feature probes on purpose,
  // and against an API with its default clear interval (compose: 1 s) a clear right after
  // another is refused with 429, which the page waits out (lib/api.js, unit-tested).
  if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of (401|404|405|422|429)/.test(m.text())) {
    consoleErrors.push(m.text());
  }
});
page.on('dialog', async (d) => {
  dialogs.push(`${d.type()}: ${d.message()}`);
  await d.dismiss();
});

const text = async (selector) => ((await page.locator(selector).first().textContent()) ?? '').trim();
const waitFor = (fn, arg, timeout = 10_000) => page.waitForFunction(fn, arg, { timeout, polling: 100 });
const badgeSource = () => page.locator('#source-badge').getAttribute('data-source');

/** Types an id and presses Enter (keyboard path); resolves when the badge reflects a new answer. */
async function lookupByKeyboard(id) {
  const before = await page.evaluate(() => document.querySelectorAll('#timeline-chart .timeline-bar').length);
  await page.locator('#product-id').fill(String(id));
  await page.locator('#product-id').press('Enter');
  await waitFor(
    (n) => document.querySelectorAll('#timeline-chart .timeline-bar').length !== n || !document.getElementById('lookup-error').hidden,
    before,
  );
  // the timeline is capped: also wait until the button is usable again
  await page.locator('#lookup-button:not([disabled])').waitFor();
}

async function clearCacheViaButton() {
  await page.locator('#clear-button').click();
  await waitFor(() => {
    const s = document.getElementById('clear-status');
    return s && !s.hidden && /Cache cleared/.test(s.textContent ?? '');
  });
}

/** The hit rate and the speed-up are never broken inside the number ("71.↵8%"). */
async function assertFiguresOnOneLine(where) {
  for (const id of ['hitrate-now', 'speedup-factor']) {
    const { value, lines } = await page.evaluate((nodeId) => {
      const node = document.getElementById(nodeId);
      const range = document.createRange();
      range.selectNodeContents(node);
      const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
      return { value: node.textContent, lines: tops.size };
    }, id);
    assert(lines === 1, `#${id} (${value}) is on one line ${where}, not ${lines}`);
  }
}

async function statValue(id) {
  return text(`[data-stat="${id}"] [data-value]`);
}

// ------------------------------------------------------------------ tests

const feat = await features();
console.log(`# API features: ${JSON.stringify(feat)}`);

test('the API serves the page and every panel renders', async () => {
  const res = await page.goto(`${BASE}/`, { waitUntil: 'load' });
  // Writes and cache clears need the admin token, as where the service is deployed.
  if (TOKEN) await page.locator('#edit-token').fill(TOKEN);
  assert(res && res.ok(), `GET / answered ${res?.status()}`);
  // The page keeps the admin token in a field: it is served with a CSP that allows no
  // inline script or style (a violation shows as a console error, checked at the end).
  const csp = (await res.allHeaders())['content-security-policy'] ?? '';
  for (const directive of ["script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"]) {
    assert(csp.includes(directive), `Content-Security-Policy has ${directive}: ${JSON.stringify(csp)}`);
  }
  assert((await page.title()).includes('CacheMe'), 'title names CacheMe');
  await page.locator('html[data-ready="true"]').waitFor({ state: 'attached' });
  for (const id of ['lookup-panel', 'stats-panel', 'health-panel', 'timeline-panel', 'hitrate-panel', 'stampede-panel', 'load-panel', 'catalogue-panel']) {
    assert(await page.locator(`#${id}`).isVisible(), `#${id} is visible`);
  }
  // An admin tool is linked only when the build was given its address (the page under test
  // is built in this environment: `cargo xtask test`, or the README's steps); the others are
  // named as not running, never linked to a port where nothing answers.
  const note = page.locator('#tools-missing');
  const missing = (await note.count()) ? ((await note.getAttribute('data-missing')) ?? '').split(',') : [];
  for (const [tool, variable] of [
    ['pgAdmin', 'PUBLIC_PGADMIN_URL'],
    ['Redis Commander', 'PUBLIC_REDIS_COMMANDER_URL'],
    ['Jaeger', 'PUBLIC_JAEGER_URL'],
  ]) {
    const link = page.locator(`[data-tool="${tool}"]`);
    const configured = (process.env[variable] ?? '').trim();
    if (configured) {
      assert((await link.getAttribute('href')) === configured, `${tool} links to ${variable} (${configured})`);
      assert(!missing.includes(tool), `${tool} is not also named as not running`);
    } else {
      assert((await link.count()) === 0, `no ${tool} link without ${variable}`);
      assert(missing.includes(tool), `${tool} is named as not running (${missing})`);
    }
  }
  if (missing.length) assert(/not running here/.test(await text('#tools-missing')), `the header says so: ${await text('#tools-missing')}`);
  // every input has a label
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea')]
      .filter((i) => !(i.labels && i.labels.length) && !i.getAttribute('aria-label'))
      .map((i) => i.id || i.outerHTML.slice(0, 60)),
  );
  assert(unlabelled.length === 0, `inputs without a label: ${unlabelled.join(', ')}`);
}, { always: true });

test('the health panel shows PostgreSQL and Redis', async () => {
  await waitFor(() => ['healthy', 'degraded', 'unhealthy'].includes(document.getElementById('health-status')?.dataset.status ?? ''));
  assert((await page.locator('#health-status').getAttribute('data-status')) === 'healthy', 'the API is healthy');
  assert((await text('#health-db')) === 'connected', 'database connected');
  assert((await text('#health-redis')) === 'connected', 'redis connected');
});

test('looking up a product twice: database, then cache (keyboard only)', async () => {
  await clearCacheViaButton();
  await lookupByKeyboard(2);
  assert((await badgeSource()) === 'database', `first lookup from the database, got ${await badgeSource()}`);
  assert((await text('#product-name')).length > 0, 'the product name is shown');
  assert(/ms$/.test(await text('#fetch-time')), 'the fetch time is shown');
  await lookupByKeyboard(2);
  assert((await badgeSource()) === 'cache', `second lookup from the cache, got ${await badgeSource()}`);
  assert(/^CACHE/.test(await text('#source-badge')), 'badge says CACHE');
  const bars = await page.locator('#timeline-chart .timeline-bar').count();
  assert(bars >= 2, `the timeline has bars (${bars})`);
  if (feat.serverTiming) {
    assert(await page.locator('#lookup-timing').isVisible(), 'Server-Timing phases are shown');
  }
  const factor = await page.locator('#speedup-factor').getAttribute('data-factor');
  assert(factor && Number(factor) > 0, `a speed-up factor is shown (${factor})`);
});

test('the statistics refresh themselves and move', async () => {
  await page.locator('#stats-state[data-state="running"]').waitFor();
  const hitsBefore = Number((await statValue('hits')).replace(/,/g, ''));
  const missesBefore = Number((await statValue('misses')).replace(/,/g, ''));
  // one hit and one miss, made outside the page: only the auto-refresh can show them
  await fetch(`${BASE}/cache/clear`, { method: 'DELETE', headers: TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {} });
  await fetch(`${BASE}/products/3`);
  await fetch(`${BASE}/products/3`);
  await waitFor(
    ([h, m]) => {
      const v = (id) => Number((document.querySelector(`[data-stat="${id}"] [data-value]`)?.textContent ?? '').replace(/,/g, ''));
      return v('hits') > h && v('misses') > m;
    },
    [hitsBefore, missesBefore],
    6000,
  );
  const rate = await statValue('hit-rate');
  assert(/%$/.test(rate), `hit rate shown as a percentage (${rate})`);
  assert((await page.locator('#hitrate-chart .hitrate-line').count()) >= 1, 'the hit-rate chart has a line');
});

test('clearing the cache makes the next lookup come from the database', async () => {
  const bars = () => page.evaluate(() => document.querySelectorAll('#timeline-chart .timeline-bar').length);
  const quick5 = async () => {
    const before = await bars();
    await page.locator('[data-quick="5"]').click();
    await waitFor((n) => document.querySelectorAll('#timeline-chart .timeline-bar').length !== n && document.getElementById('product-id-out')?.textContent === '5', before);
  };
  await quick5();
  await quick5();
  assert((await badgeSource()) === 'cache', `product 5 cached, got ${await badgeSource()}`);
  await clearCacheViaButton();
  await quick5();
  assert((await badgeSource()) === 'database', `after clearing, from the database, got ${await badgeSource()}`);
});

test('a bad id shows an inline error, never a dialog', async () => {
  await lookupByKeyboard(99999);
  await page.locator('#lookup-error').waitFor({ state: 'visible' });
  assert(/Product not found/.test(await text('#lookup-error')), `404 explained inline: ${await text('#lookup-error')}`);
  assert((await page.locator('#product-id').getAttribute('aria-invalid')) === 'true', 'the input is marked invalid');
  await page.locator('#product-id').fill('abc');
  await page.locator('#product-id').press('Enter');
  await waitFor(() => /not a product id/.test(document.getElementById('lookup-error')?.textContent ?? ''));
  await lookupByKeyboard(1);
  assert(await page.locator('#lookup-error').isHidden(), 'a good lookup clears the error');
  assert(dialogs.length === 0, `no dialogs (${dialogs.join('; ')})`);
});

test('the catalogue pages through GET /products', async () => {
  await page.locator('#catalogue-rows tr').first().waitFor();
  const ids = async () => page.locator('#catalogue-rows tr').evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-id'))));
  const first = await ids();
  assert(first.length === 10 && first[0] === 1 && first[9] === 10, `page 1 holds ids 1–10 (${first})`);
  assert(await page.locator('#page-prev').isDisabled(), 'no previous page on page 1');
  await page.locator('#page-next').click();
  await waitFor(() => document.querySelector('#catalogue-rows tr')?.getAttribute('data-id') === '11');
  const second = await ids();
  assert(second.length >= 5 && second[0] === 11, `page 2 starts at 11 (${second})`);
  await page.locator('#page-size').selectOption('5');
  await waitFor(() => document.querySelectorAll('#catalogue-rows tr').length === 5 && document.querySelector('#catalogue-rows tr')?.getAttribute('data-id') === '1');
  await page.locator('#page-size').selectOption('10');
  await waitFor(() => document.querySelectorAll('#catalogue-rows tr').length === 10);
  // pick a product from the table
  const row = page.locator('#catalogue-rows tr[data-id="4"]');
  const name = ((await row.locator('td').nth(1).textContent()) ?? '').trim();
  await row.getByRole('button').click();
  await waitFor((n) => document.getElementById('product-name')?.textContent === n, name);
});

test('the stampede demo reports what it cost', async () => {
  await page.locator('#stampede-id').fill('7');
  await page.locator('#stampede-n').fill('20');
  await page.locator('#stampede-run').click();
  await page.locator('#stampede-result').waitFor({ state: 'visible', timeout: 20_000 });
  assert((await text('#stampede-requests')) === '20', 'reports 20 requests');
  const fromDb = Number(await text('#stampede-from-db'));
  const fromCache = Number(await text('#stampede-from-cache'));
  assert(fromDb + fromCache === 20, `all 20 answered (${fromDb} + ${fromCache})`);
  assert(fromDb >= 1, 'the cold product was read from the database at least once');
  const summary = await text('#stampede-summary');
  if (feat.dbQueries) {
    const q = Number(await page.locator('#stampede-db-queries').getAttribute('data-value'));
    assert(Number.isInteger(q) && q >= 1 && q <= 20, `db queries between 1 and 20 (${q})`);
    assert(/cost \d+ database quer/.test(summary), `summary states the cost: ${summary}`);
    console.log(`#   stampede of 20 cost ${q} database ${q === 1 ? 'query' : 'queries'}`);
  } else {
    assert((await text('#stampede-db-queries')) === 'n/a', 'db queries shown as n/a without db_queries');
    assert(/does not report db_queries/.test(summary), `summary explains the missing count: ${summary}`);
  }
  assert(await page.locator('#stampede-error').isHidden(), `no error: ${await text('#stampede-error')}`);
});

test('the load test draws database and cache bars', async () => {
  await page.locator('#load-n').fill('30');
  await page.locator('#load-distinct').fill('5');
  await page.locator('#load-concurrency').fill('3');
  await page.locator('#load-clear').check();
  await page.locator('#load-run').click();
  await page.locator('#load-result').waitFor({ state: 'visible', timeout: 30_000 });
  const kinds = await page.locator('#load-bars .load-bar').evaluateAll((bars) => bars.map((b) => b.getAttribute('data-kind')));
  assert(kinds.includes('database'), `a database bar (${kinds})`);
  assert(kinds.some((k) => k === 'redis' || k === 'memory' || k === 'cache'), `a cache bar (${kinds})`);
  assert(/faster than database/.test(await text('#load-summary')), `summary compares: ${await text('#load-summary')}`);
});

test('the remaining TTL of the looked-up product', async () => {
  if (!feat.entries) {
    assert(await page.locator('#ttl-panel').isHidden(), 'the TTL panel is hidden when the API lacks /cache/entries');
    skip('API has no GET /cache/entries/{id}');
  }
  await page.locator('#ttl-panel').waitFor({ state: 'visible' });
  await lookupByKeyboard(6);
  await waitFor(() => document.getElementById('ttl-state')?.dataset.cached === 'true' && Number(document.getElementById('ttl-value')?.dataset.seconds) > 0);
  await clearCacheViaButton();
  await waitFor(() => document.getElementById('ttl-state')?.dataset.cached === 'false', undefined, 6000);
});

test('editing a product shows the invalidation', async () => {
  if (!feat.put && !feat.patch) {
    assert(await page.locator('#edit-panel').isHidden(), 'the edit form is hidden when the API has no writes');
    skip('API has no PUT/PATCH /products/{id}');
  }
  await page.locator('#edit-panel').waitFor({ state: 'visible' });
  const eight = await apiGet('/products/8');
  assert(eight.status === 200, `product 8 exists (${eight.status})`);
  await page.locator('#edit-id').fill('8');
  await page.locator('#edit-load').click();
  await waitFor((name) => document.getElementById('edit-name')?.value === name, eight.body.name);
  await page.locator('#edit-load:not([disabled])').waitFor();
  const price = (100 + Math.floor(Math.random() * 800) + 0.25).toFixed(2);
  await page.locator('#edit-price').fill(price);
  if (TOKEN) await page.locator('#edit-token').fill(TOKEN);
  await page.locator('#edit-save').click();
  const shown = `$${Number(price).toLocaleString('en-US', { minimumFractionDigits: 2 })}`;
  await waitFor(
    (p) => [...document.querySelectorAll('#edit-log li')].some((li) => /→ DATABASE/.test(li.textContent ?? '') && (li.textContent ?? '').includes(p) && /after the write/.test(li.textContent ?? '')),
    shown,
    15_000,
  ).catch(async (e) => {
    throw new Error(`no fresh database read after the write; log: ${await text('#edit-log')}; error: ${await text('#edit-error')} (${e.message})`);
  });
  assert(await page.locator('#edit-error').isHidden(), `no error: ${await text('#edit-error')}`);
});

test('product fields are shown as text, never as HTML', async () => {
  if (!feat.create) skip('API has no POST /products');
  const evil = '<img src=x onerror="window.__xss=1">Evil <b>bold</b>';
  const res = await fetch(`${BASE}/products`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {}) },
    body: JSON.stringify({ name: evil, description: '<script>window.__xss=2</script>', price: 1.5, category: '<i>x</i>' }),
  });
  // Writes need the admin token where the service is deployed: a 401 or 403 here is a
  // failure (set CACHEME_TOKEN to the API's ADMIN_TOKEN), never a skip.
  assert(res.status !== 401 && res.status !== 403, `writes refused (${res.status}): set CACHEME_TOKEN to the API's ADMIN_TOKEN`);
  assert(res.status === 201 || res.status === 200, `created (${res.status})`);
  const { id } = await res.json();
  try {
    await lookupByKeyboard(id);
    assert((await page.locator('#product-name').textContent()) === evil, 'the name is shown literally');
    assert((await page.locator('#lookup-result img, #lookup-result b, #lookup-result script').count()) === 0, 'no markup was created');
    await page.locator('#catalogue-refresh').click();
    assert(!(await page.evaluate(() => 'xss' in window || '__xss' in window)), 'no script ran');
  } finally {
    if (feat.remove) await fetch(`${BASE}/products/${id}`, { method: 'DELETE', headers: TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {} });
  }
});

test('statistics pause while the tab is hidden', async () => {
  const statsCalls = () => requests.filter((r) => r === 'GET /cache/stats').length;
  await page.evaluate(() => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await page.locator('#stats-state[data-state="paused"]').waitFor();
  await page.waitForTimeout(300); // let an in-flight refresh land
  const before = statsCalls();
  await page.waitForTimeout(4500);
  assert(statsCalls() === before, `no stats request while hidden (${statsCalls() - before})`);
  await page.evaluate(() => {
    delete document.hidden;
    delete document.visibilityState;
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await page.locator('#stats-state[data-state="running"]').waitFor();
  await page.waitForTimeout(500);
  assert(statsCalls() > before, 'refreshes again at once when visible');
});

test('screenshots at desktop and phone width, no horizontal scrolling', async () => {
  // fill the lookup panel with a cache answer for the picture
  await lookupByKeyboard(1);
  await lookupByKeyboard(1);
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.waitForTimeout(2500); // one stats refresh at this width
  await page.screenshot({ path: path.join(OUT, 'desktop.png'), fullPage: true });
  await assertFiguresOnOneLine('at 1280 px');
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(600);
  await assertFiguresOnOneLine('at 390 px');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  await page.screenshot({ path: path.join(OUT, 'phone.png'), fullPage: true });
  assert(overflow <= 0, `no horizontal scrolling at 390 px (overflow ${overflow} px)`);
  await page.setViewportSize({ width: 1280, height: 900 });
});

test('no external requests, script errors or dialogs', async () => {
  assert(external.length === 0, `external requests: ${external.join(', ')}`);
  assert(pageErrors.length === 0, `script errors: ${pageErrors.join(' | ')}`);
  assert(consoleErrors.length === 0, `console errors: ${consoleErrors.join(' | ')}`);
  assert(dialogs.length === 0, `dialogs: ${dialogs.join(' | ')}`);
});

// ------------------------------------------------------------------ run

let passed = 0;
let failed = 0;
let skipped = 0;
let n = 0;
for (const t of tests) {
  if (ONLY && !t.always && !t.name.includes(ONLY)) continue;
  n += 1;
  const started = Date.now();
  try {
    await withTimeout(t.fn(), 60_000, t.name);
    passed += 1;
    console.log(`ok ${n} - ${t.name} (${Date.now() - started} ms)`);
  } catch (e) {
    if (e instanceof Skip) {
      skipped += 1;
      console.log(`ok ${n} - ${t.name} # SKIP ${e.message}`);
      continue;
    }
    failed += 1;
    console.log(`not ok ${n} - ${t.name}`);
    console.log(`  ${String(e instanceof Error ? e.message : e).split('\n').join('\n  ')}`);
    const shot = path.join(OUT, `failure-${n}.png`);
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    console.log(`  screenshot: ${shot}`);
  }
}

await context.close();
rmSync(profile, { recursive: true, force: true });
console.log(`# screenshots in ${OUT}`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
