import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KIND_COLOURS, Timeline, classify, logDomain, logScale, median, percentLines, percentile, speedup, timelineBars } from '../../src/lib/timeline.js';

test('classify by source and tier', () => {
  assert.equal(classify({ source: 'database' }), 'database');
  assert.equal(classify({ source: 'cache' }), 'cache');
  assert.equal(classify({ source: 'cache', tier: 'memory' }), 'memory');
  assert.equal(classify({ source: 'cache', tier: 'redis' }), 'redis');
  assert.equal(classify({ ok: false, source: 'cache' }), 'error');
  assert.equal(classify({}), 'error');
});

test('median and percentile', () => {
  assert.equal(median([]), null);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95), 10);
  assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50), 5);
});

test('Timeline caps its entries and numbers them', () => {
  const t = new Timeline(2);
  t.add({ label: '#1', source: 'database', serverMs: 10 });
  t.add({ label: '#1', source: 'cache', serverMs: 1 });
  t.add({ label: '#1', source: 'cache', tier: 'memory', serverMs: 0.1 });
  assert.deepEqual(t.entries.map((e) => e.seq), [2, 3]);
  assert.deepEqual(t.entries.map((e) => e.kind), ['cache', 'memory']);
});

test('speedup compares medians of database and cache', () => {
  const t = new Timeline();
  t.add({ label: '#1', source: 'database', serverMs: 12 });
  assert.equal(speedup(t.entries).factor, null);
  t.add({ label: '#1', source: 'cache', tier: 'redis', serverMs: 0.5 });
  t.add({ label: '#1', source: 'cache', tier: 'memory', serverMs: 0.1 });
  t.add({ label: '#2', source: 'cache', tier: 'memory', serverMs: 0.3 });
  t.add({ label: '#9', ok: false });
  const s = speedup(t.entries);
  assert.equal(s.dbMedian, 12);
  assert.equal(s.cacheMedian, 0.3);
  assert.equal(s.cacheCount, 3);
  assert.equal(Math.round(s.factor), 40);
  // a 0 ms cache answer does not divide by zero
  assert.ok(Number.isFinite(speedup([{ kind: 'database', serverMs: 1 }, { kind: 'redis', serverMs: 0 }]).factor));
});

test('logScale and logDomain', () => {
  const y = logScale(0.01, 100, 200, 0);
  assert.equal(y(0.01), 200);
  assert.equal(y(100), 0);
  assert.equal(y(1), 100);
  assert.equal(y(1e6), 0); // clamped
  const d = logDomain([0.05, 42]);
  assert.equal(d.min, 0.01);
  assert.equal(d.max, 100);
  assert.equal(d.ticks.length, 5);
  assert.ok(Math.abs(d.ticks[0] - 0.01) < 1e-12);
  assert.equal(logDomain([]).max, 10);
});

test('timelineBars: one bar per entry, taller when slower, coloured by kind', () => {
  const t = new Timeline();
  t.add({ label: '#1', source: 'database', serverMs: 20 });
  t.add({ label: '#1', source: 'cache', tier: 'redis', serverMs: 0.2 });
  t.add({ label: '#4', ok: false });
  const box = { width: 600, height: 200, pad: { left: 50, right: 10, top: 10, bottom: 20 }, slots: 40 };
  const { bars, ticks, plot } = timelineBars(t.entries, box);
  assert.equal(bars.length, 3);
  assert.ok(bars[0].h > bars[1].h);
  assert.equal(bars[0].colour, KIND_COLOURS.database);
  assert.equal(bars[2].kind, 'error');
  for (const b of bars) {
    assert.ok(b.x >= plot.x && b.x + b.w <= plot.x + plot.w + 0.001);
    assert.ok(b.y >= plot.y - 0.001 && b.y + b.h <= plot.y + plot.h + 0.001);
  }
  assert.ok(ticks.length >= 2);
});

test('percentLines splits at gaps and maps 0..100 onto the plot', () => {
  const plot = { x: 0, y: 0, w: 100, h: 100 };
  const runs = percentLines([null, 0, 100, null, 50], plot, 5);
  assert.deepEqual(runs, ['25.0,100.0 50.0,0.0', '100.0,50.0']);
  assert.deepEqual(percentLines([], plot), []);
});
