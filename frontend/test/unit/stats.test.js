import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HitRateSeries, normaliseStats, statTiles, tierRows } from '../../src/lib/stats.js';

const today = {
  cache_stats: { keyspace_hits: 11, keyspace_misses: 16, used_memory_human: '1.07M', connected_clients: 1, total_commands_processed: 96, total_connections_received: 50, expired_keys: 0, evicted_keys: 0, uptime_in_seconds: 1050, redis_version: '7.0.15', hit_rate: 40.74 },
  app_stats: { hits: 3, misses: 1, hit_rate: 75.0, tiers: { redis: { hits: 3, misses: 1, errors: 0, hit_rate: 75.0 } } },
  redis: 'connected',
  timestamp: '2026-11-26T15:58:30.337Z',
};

test('normaliseStats reads today’s API', () => {
  const s = normaliseStats(today);
  assert.equal(s.redisConnected, true);
  assert.equal(s.app.hits, 3);
  assert.equal(s.app.hitRate, 75);
  assert.equal(s.app.dbQueries, null);
  assert.deepEqual(Object.keys(s.app.tiers), ['redis']);
  const ids = statTiles(s).map((t) => t.id);
  assert.deepEqual(ids, ['hit-rate', 'hits', 'misses', 'memory', 'clients', 'commands', 'keyspace', 'redis']);
  const tiles = Object.fromEntries(statTiles(s).map((t) => [t.id, t.value]));
  assert.equal(tiles['hit-rate'], '75.0%');
  assert.equal(tiles.memory, '1.07M');
  assert.equal(tiles.keyspace, '40.7%');
  assert.equal(tiles.redis, 'v7.0.15');
});

test('new counters and the memory tier appear when the API has them', () => {
  const s = normaliseStats({
    ...today,
    app_stats: { ...today.app_stats, db_queries: 7, coalesced: 42, negative_hits: 2, tiers: { redis: today.app_stats.tiers.redis, memory: { hits: 9, misses: 4, errors: 0 } } },
  });
  assert.equal(s.app.dbQueries, 7);
  const ids = statTiles(s).map((t) => t.id);
  assert.ok(ids.includes('db-queries') && ids.includes('coalesced') && ids.includes('negative-hits'));
  const rows = tierRows(s);
  assert.deepEqual(rows.map((r) => r.tier), ['memory', 'redis']);
  assert.equal(rows[0].hitRate, '69.2%'); // computed from counts when the API gives no rate
});

test('Redis down: empty cache_stats, tiles still render', () => {
  const s = normaliseStats({ cache_stats: {}, app_stats: { hits: 0, misses: 0, hit_rate: 0, tiers: {} }, redis: 'disconnected' });
  assert.equal(s.redisConnected, false);
  const tiles = Object.fromEntries(statTiles(s).map((t) => [t.id, t.value]));
  assert.equal(tiles['hit-rate'], '—');
  assert.equal(tiles.memory, '—');
  assert.equal(tiles.redis, 'disconnected');
  assert.deepEqual(tierRows(s), []);
});

test('garbage in, defaults out', () => {
  const s = normaliseStats(null);
  assert.equal(s.app.hits, 0);
  assert.equal(s.redisConnected, false);
  assert.ok(statTiles(s).length > 0);
});

test('HitRateSeries: cumulative rate and per-interval rate from deltas', () => {
  const series = new HitRateSeries(3);
  const at = (hits, misses, rate) => normaliseStats({ app_stats: { hits, misses, hit_rate: rate } });
  series.push(at(0, 0, 0), 0);
  series.push(at(3, 1, 75), 2000);
  series.push(at(3, 1, 75), 4000);
  series.push(at(5, 1, 83.3), 6000);
  assert.equal(series.points.length, 3); // capped
  const [a, b, c] = series.points;
  assert.equal(a.interval, 75);
  assert.equal(a.lookups, 4);
  assert.equal(b.interval, null); // nothing happened
  assert.equal(c.interval, 100);
  assert.equal(c.cumulative, 83.3);
  // counters reset (API restart) → no negative interval
  series.push(at(1, 0, 100), 8000);
  assert.equal(series.points.at(-1).interval, null);
});
