import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pageRequest, pageView } from '../../src/lib/catalogue.js';
import { readEntry, remainingSeconds, ttlPercent } from '../../src/lib/ttl.js';
import { formValues, validateProduct } from '../../src/lib/product-form.js';
import { createPoller } from '../../src/lib/poller.js';

test('catalogue asks for one extra row to know about a next page', () => {
  assert.deepEqual(pageRequest(0, 10), { limit: 11, offset: 0 });
  assert.deepEqual(pageRequest(1, 10), { limit: 11, offset: 10 });
  assert.equal(pageRequest(0, 100).limit, 100); // the API caps limit at 100
  const rows = Array.from({ length: 11 }, (_, i) => ({ id: i + 1 }));
  const first = pageView(rows, 0, 10);
  assert.equal(first.items.length, 10);
  assert.equal(first.hasNext, true);
  assert.equal(first.hasPrev, false);
  assert.equal(first.summary, 'Products 1–10');
  const last = pageView(rows.slice(0, 5), 1, 10);
  assert.equal(last.hasNext, false);
  assert.equal(last.hasPrev, true);
  assert.equal(last.summary, 'Products 11–15');
  assert.equal(pageView([], 0, 10).summary, 'No products.');
});

test('TTL entries count down locally between fetches', () => {
  const e = readEntry({ key: 'cacheme:v1:product:1', cached: true, ttl_seconds: 3600 }, 1000);
  assert.equal(remainingSeconds(e, 1000), 3600);
  assert.equal(remainingSeconds(e, 11_500), 3590);
  assert.equal(remainingSeconds(e, 1000 + 4_000_000), 0);
  assert.equal(remainingSeconds(readEntry({ key: 'k', cached: false, ttl_seconds: null }, 0), 5), null);
  assert.equal(remainingSeconds(readEntry({ key: 'k', cached: true, ttl_seconds: null }, 0), 5), null);
  assert.equal(ttlPercent(1800, 3600), 50);
  assert.equal(ttlPercent(null, 3600), 0);
  assert.equal(ttlPercent(4000, 3600), 100);
});

test('product form validation', () => {
  const ok = validateProduct({ name: ' Lamp ', category: 'Home', price: '19.5', description: ' bright ' });
  assert.deepEqual(ok, { ok: true, value: { name: 'Lamp', category: 'Home', price: 19.5, description: 'bright' } });
  const bad = validateProduct({ name: '', category: '', price: '1.999' });
  assert.equal(bad.ok, false);
  assert.deepEqual(Object.keys(bad.errors).sort(), ['category', 'name', 'price']);
  assert.equal(validateProduct({ name: 'a', category: 'b', price: '-1' }).ok, false);
  assert.equal(validateProduct({ name: 'a', category: 'b', price: '0' }).ok, true);
  assert.deepEqual(formValues({ name: 'A', category: 'B', price: 5, description: null }), { name: 'A', category: 'B', price: '5.00', description: '' });
});

/** Manual timers: run() fires the pending one. */
function fakeTimers() {
  let next = null;
  return {
    setTimeout: (fn, ms) => {
      next = { fn, ms };
      return next;
    },
    clearTimeout: (h) => {
      if (next === h) next = null;
    },
    get pending() {
      return next;
    },
    async run() {
      const t = next;
      next = null;
      await t.fn();
      await new Promise((r) => setImmediate(r));
    },
  };
}

test('poller runs at once, then every interval, pauses while hidden, resumes on visible', async () => {
  const timers = fakeTimers();
  let hidden = false;
  let runs = 0;
  const states = [];
  const p = createPoller({ task: () => void runs++, intervalMs: 2000, isHidden: () => hidden, onState: (s) => states.push(s), ...timers });
  p.start();
  await new Promise((r) => setImmediate(r));
  assert.equal(runs, 1);
  assert.equal(timers.pending.ms, 2000);
  await timers.run();
  assert.equal(runs, 2);
  hidden = true;
  p.visibilityChanged();
  assert.equal(timers.pending, null);
  assert.equal(p.state, 'paused');
  hidden = false;
  p.visibilityChanged();
  await new Promise((r) => setImmediate(r));
  assert.equal(runs, 3);
  assert.equal(p.state, 'running');
  p.stop();
  assert.equal(timers.pending, null);
  assert.deepEqual(states, ['running', 'paused', 'running', 'stopped']);
});

test('poller skips a tick that finds the page hidden, and survives a failing task', async () => {
  const timers = fakeTimers();
  let hidden = false;
  let runs = 0;
  const p = createPoller({
    task: () => {
      runs++;
      throw new Error('boom');
    },
    intervalMs: 1000,
    isHidden: () => hidden,
    ...timers,
  });
  p.start();
  await new Promise((r) => setImmediate(r));
  assert.equal(runs, 1);
  assert.ok(timers.pending);
  hidden = true;
  await timers.run(); // hidden at tick time: no run, no new timer
  assert.equal(runs, 1);
  assert.equal(timers.pending, null);
  hidden = false;
  await p.refreshNow();
  assert.equal(runs, 2);
  assert.ok(timers.pending);
});

test('negative entries count down too', () => {
  const e = readEntry({ key: 'cacheme:v1:product:999', cached: false, negative: true, ttl_seconds: 29.5 }, 0);
  assert.equal(e.negative, true);
  assert.equal(remainingSeconds(e, 10_000), 19.5);
  assert.equal(readEntry({}, 0).negative, false);
});
