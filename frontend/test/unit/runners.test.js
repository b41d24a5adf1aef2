import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../../src/lib/api.js';
import { clampInt, describeStampede, loadTestIds, pool, runLoadTest, runStampede, shoot, summariseShots } from '../../src/lib/runners.js';

/** A fake API in memory: a cache-aside product service with optional single flight. */
function fakeApi({ singleFlight = false, reportDbQueries = true, failIds = [] } = {}) {
  const cache = new Set();
  const inflight = new Map();
  const counters = { hits: 0, misses: 0, db: 0, coalesced: 0, clears: 0 };
  const tick = () => new Promise((r) => setTimeout(r, 1));
  const dbRead = async (id) => {
    counters.db += 1;
    await tick();
    cache.add(id);
  };
  return {
    counters,
    async clearCache() {
      counters.clears += 1;
      const n = cache.size;
      cache.clear();
      return { data: { message: 'ok', cleared_keys: n } };
    },
    async stats() {
      const app = { hits: counters.hits, misses: counters.misses, hit_rate: 0, tiers: {} };
      if (reportDbQueries) Object.assign(app, { db_queries: counters.db, coalesced: counters.coalesced });
      return { data: { cache_stats: {}, app_stats: app, redis: 'connected' } };
    },
    async getProduct(id) {
      await tick();
      if (failIds.includes(id)) throw new ApiError(404, 'Product not found');
      if (cache.has(id)) {
        counters.hits += 1;
        return { data: { id, source: 'cache', cache_tier: 'redis', fetch_time_ms: 0.2 }, roundTripMs: 1 };
      }
      counters.misses += 1;
      if (singleFlight && inflight.has(id)) {
        counters.coalesced += 1;
        await inflight.get(id);
        return { data: { id, source: 'database', fetch_time_ms: 5 }, roundTripMs: 6 };
      }
      const p = dbRead(id);
      if (singleFlight) inflight.set(id, p);
      await p;
      inflight.delete(id);
      return { data: { id, source: 'database', fetch_time_ms: 5 }, roundTripMs: 6 };
    },
  };
}

test('pool keeps order and never exceeds its concurrency', async () => {
  let active = 0;
  let peak = 0;
  const out = await pool(10, 3, async (i) => {
    active += 1;
    peak = Math.max(peak, active);
    await new Promise((r) => setTimeout(r, 2));
    active -= 1;
    return i * 2;
  });
  assert.deepEqual(out, [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
  assert.equal(peak, 3);
  assert.deepEqual(await pool(0, 4, async () => 1), []);
});

test('clampInt', () => {
  assert.equal(clampInt('50', 2, 200, 10), 50);
  assert.equal(clampInt('5000', 2, 200, 10), 200);
  assert.equal(clampInt('-1', 2, 200, 10), 2);
  assert.equal(clampInt('abc', 2, 200, 10), 10);
});

test('loadTestIds is round robin from 1', () => {
  assert.deepEqual(loadTestIds(5, 2), [1, 2, 1, 2, 1]);
});

test('shoot never throws', async () => {
  const api = fakeApi({ failIds: [9] });
  const bad = await shoot(api, 9);
  assert.equal(bad.ok, false);
  assert.equal(bad.kind, 'error');
  assert.match(bad.error, /Product not found/);
  const good = await shoot(api, 1);
  assert.equal(good.kind, 'database');
});

test('runLoadTest: a cold cache gives one database read per product, then hits', async () => {
  const api = fakeApi();
  const seen = [];
  const r = await runLoadTest({ api, n: 30, distinct: 5, concurrency: 1, clearFirst: true, onShot: (_s, done) => seen.push(done) });
  assert.equal(api.counters.clears, 1);
  assert.equal(r.shots.length, 30);
  assert.deepEqual(seen, Array.from({ length: 30 }, (_, i) => i + 1));
  const byKind = Object.fromEntries(r.summary.map((g) => [g.kind, g]));
  assert.equal(byKind.database.count, 5);
  assert.equal(byKind.redis.count, 25);
  assert.equal(byKind.database.barPercent, 100);
  assert.ok(byKind.redis.barPercent < 10);
});

test('summariseShots orders database first and skips empty kinds', () => {
  const g = summariseShots([
    { id: 1, ok: true, kind: 'memory', serverMs: 0.01, roundTripMs: 1 },
    { id: 1, ok: true, kind: 'database', serverMs: 4, roundTripMs: 5 },
    { id: 2, ok: false, kind: 'error', serverMs: null, roundTripMs: null },
  ]);
  assert.deepEqual(g.map((x) => x.kind), ['database', 'memory', 'error']);
  assert.equal(g[2].barPercent, 0);
});

test('runStampede without single flight: every concurrent miss queries the database', async () => {
  const api = fakeApi({ singleFlight: false });
  await api.getProduct(7); // warm it, to prove the stampede clears first
  const r = await runStampede({ api, id: 7, n: 20 });
  assert.equal(r.requests, 20);
  assert.equal(r.clearedKeys, 1);
  assert.equal(r.ok, 20);
  assert.equal(r.dbQueries, 20);
  assert.equal(r.fromDatabase, 20);
  assert.match(describeStampede(r), /20 database queries — no protection/);
});

test('runStampede with single flight: one query for everyone', async () => {
  const api = fakeApi({ singleFlight: true });
  const r = await runStampede({ api, id: 3, n: 25 });
  assert.equal(r.dbQueries, 1);
  assert.equal(r.coalesced, 24);
  assert.match(describeStampede(r), /cost 1 database query — single flight held/);
});

test('runStampede on an API without db_queries still reports sources', async () => {
  const api = fakeApi({ reportDbQueries: false });
  const r = await runStampede({ api, id: 2, n: 5 });
  assert.equal(r.dbQueries, null);
  assert.equal(r.coalesced, null);
  assert.match(describeStampede(r), /does not report db_queries/);
});

test('runStampede reports failures', async () => {
  const api = fakeApi({ failIds: [404] });
  const r = await runStampede({ api, id: 404, n: 3 });
  assert.equal(r.ok, 0);
  assert.equal(r.failed, 3);
  assert.match(describeStampede(r), /All 3 requests failed: Product not found/);
});
