import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, createApi, errorFrom, featuresFromOpenApi, isMissingEndpoint, joinUrl, parseProductId } from '../../src/lib/api.js';

/** A fetch that records calls and answers from a table. */
function fakeFetch(answers) {
  const calls = [];
  const fn = async (url, init) => {
    calls.push({ url, init });
    const a = typeof answers === 'function' ? answers(url, init) : answers;
    if (a instanceof Error) throw a;
    return new Response(a.body === undefined ? null : typeof a.body === 'string' ? a.body : JSON.stringify(a.body), {
      status: a.status ?? 200,
      headers: a.headers ?? { 'content-type': 'application/json' },
    });
  };
  fn.calls = calls;
  return fn;
}

test('joinUrl handles same origin, trailing slashes and full URLs', () => {
  assert.equal(joinUrl('', '/products/1'), '/products/1');
  assert.equal(joinUrl('http://api:8000/', '/health'), 'http://api:8000/health');
  assert.equal(joinUrl('https://x.dev/api//', 'cache/stats'), 'https://x.dev/api/cache/stats');
  assert.equal(joinUrl(undefined, '/docs'), '/docs');
});

test('parseProductId accepts positive integers and explains the rest', () => {
  assert.deepEqual(parseProductId(' 5 '), { ok: true, id: 5 });
  assert.deepEqual(parseProductId(10), { ok: true, id: 10 });
  for (const bad of ['', '  ', 'abc', '1.5', '-3', '0', '1e3', '<script>', '99999999999']) {
    const r = parseProductId(bad);
    assert.equal(r.ok, false, bad);
    assert.ok(!r.ok && r.error.length > 0);
  }
});

test('getProduct returns data and a round-trip time', async () => {
  let t = 100;
  const fetch = fakeFetch({ body: { id: 1, name: 'A', source: 'database', fetch_time_ms: 3.5 } });
  const api = createApi({ base: 'http://h', fetch, now: () => (t += 5) });
  const a = await api.getProduct(1);
  assert.equal(a.data.source, 'database');
  assert.equal(a.roundTripMs, 5);
  assert.equal(fetch.calls[0].url, 'http://h/products/1');
  assert.equal(fetch.calls[0].init.method, 'GET');
  assert.equal(fetch.calls[0].init.cache, 'no-store');
});

test('problem+json errors become ApiError with detail, title and Retry-After', async () => {
  const fetch = fakeFetch({
    status: 503,
    headers: { 'content-type': 'application/problem+json', 'retry-after': '5' },
    body: { type: 'https://cacheme.dev/problems/database-unavailable', title: 'Service Unavailable', status: 503, detail: 'The database is unavailable; try again shortly' },
  });
  const api = createApi({ fetch });
  await assert.rejects(api.getProduct(3), (e) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.status, 503);
    assert.equal(e.detail, 'The database is unavailable; try again shortly');
    assert.equal(e.title, 'Service Unavailable');
    assert.equal(e.retryAfter, '5');
    return true;
  });
});

test('errors without a problem body still say something useful', async () => {
  const html = await errorFrom(new Response('<html>bad gateway</html>', { status: 502, statusText: 'Bad Gateway' }));
  assert.equal(html.detail, 'HTTP 502 Bad Gateway');
  const text = await errorFrom(new Response('upstream timeout', { status: 504 }));
  assert.equal(text.detail, 'upstream timeout');
});

test('a network failure is an ApiError with status 0', async () => {
  const api = createApi({ fetch: fakeFetch(new TypeError('Failed to fetch')) });
  await assert.rejects(api.stats(), (e) => e instanceof ApiError && e.status === 0 && /Cannot reach the API/.test(e.detail));
});

test('health accepts 503 as an answer (unhealthy)', async () => {
  const api = createApi({ fetch: fakeFetch({ status: 503, body: { status: 'unhealthy', database: 'disconnected', redis: 'connected' } }) });
  const a = await api.health();
  assert.equal(a.status, 503);
  assert.equal(a.data.status, 'unhealthy');
});

test('writes send JSON and the bearer token only when given', async () => {
  const fetch = fakeFetch({ status: 200, body: { id: 2 } });
  const api = createApi({ fetch });
  await api.replaceProduct(2, { name: 'n', category: 'c', price: 1, description: '' }, ' secret ');
  await api.patchProduct(2, { price: 2 }, '');
  await api.createProduct({ name: 'x' });
  await api.deleteProduct(2, 't');
  const [put, patch, post, del] = fetch.calls;
  assert.equal(put.init.method, 'PUT');
  assert.equal(put.init.headers.Authorization, 'Bearer secret');
  assert.equal(put.init.headers['Content-Type'], 'application/json');
  assert.deepEqual(JSON.parse(put.init.body), { name: 'n', category: 'c', price: 1, description: '' });
  assert.equal(patch.init.method, 'PATCH');
  assert.equal(patch.init.headers.Authorization, undefined);
  assert.equal(post.url, '/products');
  assert.equal(del.init.method, 'DELETE');
  assert.equal(del.init.body, undefined);
});

test('204 No Content is a null body', async () => {
  const api = createApi({ fetch: async () => new Response(null, { status: 204 }) });
  const a = await api.deleteProduct(1);
  assert.equal(a.data, null);
});

test('isMissingEndpoint tells an absent route from an absent product', () => {
  assert.equal(isMissingEndpoint(new ApiError(404, 'Resource not found')), true);
  assert.equal(isMissingEndpoint(new ApiError(405, 'Method not allowed on this resource')), true);
  assert.equal(isMissingEndpoint(new ApiError(404, 'Product not found')), false);
  assert.equal(isMissingEndpoint(new ApiError(401, 'Unauthorized')), false);
  assert.equal(isMissingEndpoint(new Error('x')), false);
});

test('featuresFromOpenApi reads writes and cache entries from the document', () => {
  assert.deepEqual(featuresFromOpenApi(null), { create: false, update: false, put: false, remove: false, cacheEntries: false });
  const doc = {
    paths: {
      '/products': { get: {}, post: {} },
      '/products/{id}': { get: {}, patch: {}, delete: {} },
      '/cache/entries/{id}': { get: {} },
    },
  };
  assert.deepEqual(featuresFromOpenApi(doc), { create: true, update: true, put: false, remove: true, cacheEntries: true });
});

/** Answers in order, one per call. */
const queue = (/** @type {any[]} */ answers) => () => answers.shift();

test('a clear refused as too soon (429) is retried after Retry-After, then gives up', async () => {
  const tooSoon = { status: 429, body: { detail: 'Another clear is running' }, headers: { 'Retry-After': '2' } };
  /** @type {number[]} */
  const slept = [];
  const sleep = async (/** @type {number} */ ms) => void slept.push(ms);
  const ok = createApi({ fetch: fakeFetch(queue([tooSoon, { status: 200, body: { cleared_keys: 3 } }])), sleep });
  assert.equal((await ok.clearCache('t')).data.cleared_keys, 3);
  assert.deepEqual(slept, [2000]);
  const never = createApi({ fetch: fakeFetch(queue([tooSoon, tooSoon, tooSoon, tooSoon])), sleep });
  await assert.rejects(never.clearCache('t'), (e) => e instanceof ApiError && e.status === 429);
  assert.deepEqual(slept, [2000, 2000, 2000]);
  const forbidden = createApi({ fetch: fakeFetch(queue([{ status: 401, body: { detail: 'token' } }])), sleep });
  await assert.rejects(forbidden.clearCache(''), (e) => e instanceof ApiError && e.status === 401);
  assert.equal(slept.length, 3);
});
