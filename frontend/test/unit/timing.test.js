import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jaegerTraceUrl, parseServerTiming, traceIdFrom } from '../../src/lib/timing.js';

test('parseServerTiming reads names, durations and descriptions', () => {
  assert.deepEqual(parseServerTiming('cache;dur=0.12, db;dur=3.4;desc="PostgreSQL"'), [
    { name: 'cache', dur: 0.12, desc: '' },
    { name: 'db', dur: 3.4, desc: 'PostgreSQL' },
  ]);
  assert.deepEqual(parseServerTiming('miss, total;dur=abc'), [
    { name: 'miss', dur: null, desc: '' },
    { name: 'total', dur: null, desc: '' },
  ]);
  assert.deepEqual(parseServerTiming(null), []);
  assert.deepEqual(parseServerTiming('<b>x</b>;dur=1'), []);
});

test('traceIdFrom prefers traceparent, accepts x-trace-id, rejects junk', () => {
  const h = (o) => (name) => o[name] ?? null;
  assert.equal(traceIdFrom(h({ traceparent: '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01' })), '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.equal(traceIdFrom(h({ 'x-trace-id': 'a3ce929d0e0e4736a3ce929d0e0e4736' })), 'a3ce929d0e0e4736a3ce929d0e0e4736');
  assert.equal(traceIdFrom(h({ traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01' })), null);
  assert.equal(traceIdFrom(h({ 'x-trace-id': 'javascript:alert(1)' })), null);
  assert.equal(traceIdFrom(h({})), null);
});

test('jaegerTraceUrl only links to http(s) bases', () => {
  assert.equal(jaegerTraceUrl('http://localhost:16686/', 'abc'), 'http://localhost:16686/trace/abc');
  assert.equal(jaegerTraceUrl('javascript:alert(1)', 'abc'), null);
  assert.equal(jaegerTraceUrl('', 'abc'), null);
});
