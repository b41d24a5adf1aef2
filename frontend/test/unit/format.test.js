import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clockTime, formatCount, formatFactor, formatMs, formatPercent, formatPrice, formatTtl, formatUptime, hitRate, sourceLabel } from '../../src/lib/format.js';

test('formatMs picks a precision by size', () => {
  assert.equal(formatMs(0.0421), '0.042 ms');
  assert.equal(formatMs(3.414), '3.41 ms');
  assert.equal(formatMs(182.26), '182.3 ms');
  assert.equal(formatMs(1250), '1.25 s');
  assert.equal(formatMs(null), '—');
  assert.equal(formatMs(Number.NaN), '—');
});

test('hitRate and formatPercent', () => {
  assert.equal(hitRate(3, 1), 75);
  assert.equal(hitRate(0, 0), null);
  assert.equal(formatPercent(75), '75.0%');
  assert.equal(formatPercent(100), '100%');
  assert.equal(formatPercent(0), '0%');
  assert.equal(formatPercent(null), '—');
});

test('TTL and uptime read like a person would say them', () => {
  assert.equal(formatTtl(12.7), '12 s');
  assert.equal(formatTtl(3552), '59 min 12 s');
  assert.equal(formatTtl(3600), '1 h 0 min');
  assert.equal(formatTtl(-4), '0 s');
  assert.equal(formatTtl(null), '—');
  assert.equal(formatUptime(90061), '1 d 1 h');
});

test('prices, counts and factors', () => {
  assert.equal(formatPrice(79.99), '$79.99');
  assert.equal(formatPrice('2499.9'), '$2,499.90');
  assert.equal(formatPrice(undefined), '—');
  assert.equal(formatCount(12345), '12,345');
  assert.equal(formatFactor(23.4), '23×');
  assert.equal(formatFactor(1.84), '1.8×');
  assert.equal(formatFactor(null), '—');
});

test('sourceLabel names the tier when the API gives one', () => {
  assert.equal(sourceLabel({ source: 'database' }), 'DATABASE');
  assert.equal(sourceLabel({ source: 'cache' }), 'CACHE');
  assert.equal(sourceLabel({ source: 'cache', cache_tier: 'memory' }), 'CACHE · MEMORY');
  assert.equal(sourceLabel({ source: 'cache', cache_tier: 'redis' }), 'CACHE · REDIS');
});

test('clockTime pads', () => {
  assert.equal(clockTime(new Date(2024, 0, 1, 4, 5, 6)), '04:05:06');
});
