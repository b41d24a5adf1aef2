import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../../src/lib/api.js';
import { messageFor } from '../../src/lib/messages.js';
import { httpUrl, notRunningText, toolLinks } from '../../src/lib/tools.js';
import { Events } from '../../src/scripts/context.js';

test('messageFor explains API errors for a person', () => {
  assert.equal(messageFor(new ApiError(0, 'Cannot reach the API (refused).')), 'Cannot reach the API (refused).');
  assert.equal(messageFor(new ApiError(404, 'Product not found'), 'product with id 7'), 'No product with id 7: Product not found (404).');
  assert.equal(messageFor(new ApiError(404, 'Product not found')), 'Not found: Product not found (404).');
  assert.match(messageFor(new ApiError(401, 'Missing token')), /^Missing token \(401\): .*"Admin token" field/);
  assert.match(messageFor(new ApiError(403, 'Writes are disabled')), /\(403\): this instance accepts no writes/);
  assert.equal(
    messageFor(new ApiError(503, 'Database unavailable', { title: 'Service Unavailable', retryAfter: '5' })),
    'Database unavailable (503 Service Unavailable). Retry in 5 s.',
  );
  assert.equal(messageFor(new ApiError(500, 'boom')), 'boom (500).');
  assert.equal(messageFor(new Error('plain')), 'plain');
  assert.equal(messageFor('text'), 'text');
});

test('the header links only the tools the build was given an http(s) address for', () => {
  const none = toolLinks({});
  assert.deepEqual(none.links, []);
  assert.deepEqual(
    none.missing.map((t) => t.label),
    ['pgAdmin', 'Redis Commander', 'Jaeger'],
  );
  assert.equal(none.jaegerUrl, '');

  const some = toolLinks({ PUBLIC_PGADMIN_URL: ' http://localhost:5050 ', PUBLIC_JAEGER_URL: 'http://localhost:16686', PUBLIC_REDIS_COMMANDER_URL: '' });
  assert.deepEqual(
    some.links.map((t) => [t.label, t.href]),
    [
      ['pgAdmin', 'http://localhost:5050'],
      ['Jaeger', 'http://localhost:16686'],
    ],
  );
  assert.deepEqual(
    some.missing.map((t) => t.env),
    ['PUBLIC_REDIS_COMMANDER_URL'],
  );
  assert.equal(some.jaegerUrl, 'http://localhost:16686');

  // Not a link: a relative path, a script URL, a bare host.
  assert.equal(httpUrl('/pgadmin'), null);
  assert.equal(httpUrl('javascript:alert(1)'), null);
  assert.equal(httpUrl('localhost:5050'), null);
  assert.equal(httpUrl(undefined), null);
  assert.equal(httpUrl('https://tools.example/jaeger'), 'https://tools.example/jaeger');
});

test('the header names the tools that are not running', () => {
  assert.equal(notRunningText([]), '');
  assert.equal(notRunningText(['Jaeger']), 'Jaeger is not running here');
  assert.equal(notRunningText(['pgAdmin', 'Jaeger']), 'pgAdmin and Jaeger are not running here');
  assert.equal(notRunningText(['pgAdmin', 'Redis Commander', 'Jaeger']), 'pgAdmin, Redis Commander and Jaeger are not running here');
});

test('events reach every handler in order, even past one that throws', (t) => {
  const events = new Events();
  const seen = [];
  events.on('stats', (v) => seen.push(['a', v]));
  events.on('stats', () => {
    throw new Error('handler failed');
  });
  events.on('stats', (v) => seen.push(['b', v]));
  events.on('other', () => seen.push(['other']));
  // The failing handler's error is rethrown from a timer of its own: run that timer here.
  const deferred = [];
  t.mock.method(globalThis, 'setTimeout', (fn) => deferred.push(fn));
  events.emit('stats', 1);
  events.emit('nobody-listens', 2);
  t.mock.restoreAll();
  assert.deepEqual(seen, [
    ['a', 1],
    ['b', 1],
  ]);
  assert.equal(deferred.length, 1);
  assert.throws(deferred[0], /handler failed/);
});
