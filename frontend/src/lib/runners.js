// @ts-check
/** The two experiments: a load test and a cache stampede. They take the API client as a parameter. */
import { classify, mean, percentile } from './timeline.js';
import { normaliseStats } from './stats.js';

/**
 * Runs `task(i)` for i in 0..n-1 with at most `concurrency` in flight; results keep their order.
 * @template T
 * @param {number} n
 * @param {number} concurrency
 * @param {(i: number) => Promise<T>} task
 * @returns {Promise<T[]>}
 */
export async function pool(n, concurrency, task) {
  /** @type {T[]} */
  const results = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, n)) }, worker));
  return results;
}

/**
 * Clamps a number typed by a person into [min, max]; falls back when it is not a number.
 * @param {string|number} raw
 * @param {number} min
 * @param {number} max
 * @param {number} fallback
 */
export function clampInt(raw, min, max, fallback) {
  const n = Number.parseInt(String(raw), 10);
  if (!Number.isFinite(n)) return fallback;
  return Math.min(max, Math.max(min, n));
}

/**
 * @typedef {{id: number, ok: boolean, kind: import('./timeline.js').Kind, serverMs: number|null, roundTripMs: number|null, error?: string}} Shot
 */

/**
 * One product lookup as a Shot (never throws).
 * @param {import('./api.js').Api} api
 * @param {number} id
 * @returns {Promise<Shot>}
 */
export async function shoot(api, id) {
  try {
    const { data, roundTripMs } = await api.getProduct(id);
    return {
      id,
      ok: true,
      kind: classify({ ok: true, source: data.source, tier: data.cache_tier }),
      serverMs: typeof data.fetch_time_ms === 'number' ? data.fetch_time_ms : null,
      roundTripMs,
    };
  } catch (e) {
    return { id, ok: false, kind: 'error', serverMs: null, roundTripMs: null, error: e instanceof Error ? e.message : String(e) };
  }
}

/**
 * The ids a load test asks for: 1..distinct, round robin.
 * @param {number} n
 * @param {number} distinct
 */
export function loadTestIds(n, distinct) {
  return Array.from({ length: n }, (_, i) => (i % Math.max(1, distinct)) + 1);
}

/**
 * @param {{api: import('./api.js').Api, n: number, distinct: number, concurrency: number, clearFirst: boolean, token?: string,
 *   onShot?: (shot: Shot, done: number) => void}} o
 */
export async function runLoadTest(o) {
  if (o.clearFirst) await o.api.clearCache(o.token);
  const ids = loadTestIds(o.n, o.distinct);
  const started = globalThis.performance.now();
  let done = 0;
  const shots = await pool(ids.length, o.concurrency, async (i) => {
    const shot = await shoot(o.api, ids[i]);
    done += 1;
    o.onShot?.(shot, done);
    return shot;
  });
  return { shots, elapsedMs: globalThis.performance.now() - started, summary: summariseShots(shots) };
}

/**
 * Per kind: count, mean, p50, p95 of the server time; bars scaled to the slowest mean.
 * @param {Shot[]} shots
 */
export function summariseShots(shots) {
  /** @type {import('./timeline.js').Kind[]} */
  const order = ['database', 'redis', 'memory', 'cache', 'error'];
  const groups = order
    .map((kind) => {
      const mine = shots.filter((s) => s.kind === kind);
      const ms = mine.map((s) => s.serverMs).filter((v) => v != null).map(Number);
      const rt = mine.map((s) => s.roundTripMs).filter((v) => v != null).map(Number);
      return {
        kind,
        count: mine.length,
        meanMs: mean(ms),
        p50Ms: percentile(ms, 50),
        p95Ms: percentile(ms, 95),
        meanRoundTripMs: mean(rt),
        barPercent: 0,
      };
    })
    .filter((g) => g.count > 0);
  const slowest = Math.max(0, ...groups.map((g) => g.meanMs ?? 0));
  for (const g of groups) {
    g.barPercent = slowest > 0 && g.meanMs != null ? Math.max(1, (g.meanMs / slowest) * 100) : 0;
  }
  return groups;
}

/**
 * Cache stampede: empty the cache, then fire `n` concurrent lookups of one cold product.
 * The cost is read from the API's `app_stats.db_queries` before and after (null when the API
 * does not report it); the answers' sources are counted either way.
 * @param {{api: import('./api.js').Api, id: number, n: number, token?: string}} o
 */
export async function runStampede(o) {
  const cleared = await o.api.clearCache(o.token);
  const before = normaliseStats((await o.api.stats()).data);
  const started = globalThis.performance.now();
  const shots = await Promise.all(Array.from({ length: o.n }, () => shoot(o.api, o.id)));
  const elapsedMs = globalThis.performance.now() - started;
  const after = normaliseStats((await o.api.stats()).data);
  const delta = (/** @type {number|null} */ a, /** @type {number|null} */ b) => (a != null && b != null ? b - a : null);
  const errors = shots.filter((s) => !s.ok);
  return {
    id: o.id,
    requests: o.n,
    clearedKeys: typeof cleared.data?.cleared_keys === 'number' ? cleared.data.cleared_keys : null,
    ok: shots.length - errors.length,
    failed: errors.length,
    firstError: errors[0]?.error ?? null,
    fromDatabase: shots.filter((s) => s.kind === 'database').length,
    fromCache: shots.filter((s) => s.ok && s.kind !== 'database').length,
    dbQueries: delta(before.app.dbQueries, after.app.dbQueries),
    coalesced: delta(before.app.coalesced, after.app.coalesced),
    elapsedMs,
  };
}

/**
 * One sentence that tells what the stampede cost.
 * @param {Awaited<ReturnType<typeof runStampede>>} r
 */
export function describeStampede(r) {
  if (r.ok === 0) return `All ${r.requests} requests failed${r.firstError ? `: ${r.firstError}` : '.'}`;
  if (r.dbQueries == null) {
    return `${r.requests} concurrent requests for cold product #${r.id}: ${r.fromDatabase} answered from the database, ${r.fromCache} from the cache. (This API does not report db_queries, so the query count is unknown.)`;
  }
  const q = r.dbQueries === 1 ? '1 database query' : `${r.dbQueries} database queries`;
  const verdict = r.dbQueries <= 1 ? 'single flight held: one query served everyone' : r.dbQueries >= r.requests ? 'no protection: every request went to the database' : 'partly coalesced';
  return `${r.requests} concurrent requests for cold product #${r.id} cost ${q} — ${verdict}.`;
}
