// @ts-check
/** Reading `GET /cache/stats` into what the page shows; tolerant of fields the API lacks. */
import { formatCount, formatPercent, formatUptime, hitRate } from './format.js';

/** @param {unknown} v */
const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/**
 * @typedef {{hits: number|null, misses: number|null, errors: number|null, hitRate: number|null}} TierStats
 * @typedef {object} Stats
 * @property {boolean} redisConnected
 * @property {Record<string, unknown>} server Redis INFO fields (empty while Redis is down)
 * @property {{hits: number, misses: number, hitRate: number|null, dbQueries: number|null,
 *   coalesced: number|null, negativeHits: number|null, staleServed: number|null, tiers: Record<string, TierStats>}} app
 * @property {string} timestamp
 */

/**
 * @param {any} json the body of GET /cache/stats
 * @returns {Stats}
 */
export function normaliseStats(json) {
  const app = json && typeof json.app_stats === 'object' && json.app_stats ? json.app_stats : {};
  const server = json && typeof json.cache_stats === 'object' && json.cache_stats ? json.cache_stats : {};
  const hits = num(app.hits) ?? 0;
  const misses = num(app.misses) ?? 0;
  /** @type {Record<string, TierStats>} */
  const tiers = {};
  if (app.tiers && typeof app.tiers === 'object') {
    for (const [name, t] of Object.entries(app.tiers)) {
      if (!t || typeof t !== 'object') continue;
      const th = num(t.hits);
      const tm = num(t.misses);
      tiers[name] = {
        hits: th,
        misses: tm,
        errors: num(t.errors),
        hitRate: num(t.hit_rate) ?? (th != null && tm != null ? hitRate(th, tm) : null),
      };
    }
  }
  return {
    redisConnected: json?.redis === 'connected',
    server,
    app: {
      hits,
      misses,
      hitRate: num(app.hit_rate) ?? hitRate(hits, misses),
      dbQueries: num(app.db_queries),
      coalesced: num(app.coalesced),
      negativeHits: num(app.negative_hits),
      staleServed: num(app.stale_served),
      tiers,
    },
    timestamp: typeof json?.timestamp === 'string' ? json.timestamp : '',
  };
}

/**
 * The tiles of the stats panel, in order. `id` is stable (tests and the DOM use it).
 * @param {Stats} s
 * @returns {{id: string, label: string, value: string, hint: string}[]}
 */
export function statTiles(s) {
  const srv = s.server;
  /** @type {{id: string, label: string, value: string, hint: string}[]} */
  const tiles = [
    { id: 'hit-rate', label: 'Hit rate', value: s.app.hits + s.app.misses > 0 ? formatPercent(s.app.hitRate) : '—', hint: 'this API process: hits ÷ (hits + misses)' },
    { id: 'hits', label: 'Cache hits', value: formatCount(s.app.hits), hint: 'answered from a cache tier' },
    { id: 'misses', label: 'Cache misses', value: formatCount(s.app.misses), hint: 'had to ask PostgreSQL' },
  ];
  if (s.app.dbQueries != null) {
    tiles.push({ id: 'db-queries', label: 'DB queries', value: formatCount(s.app.dbQueries), hint: 'product reads that reached PostgreSQL' });
  }
  if (s.app.coalesced != null) {
    tiles.push({ id: 'coalesced', label: 'Coalesced', value: formatCount(s.app.coalesced), hint: 'requests that waited for another’s query (single flight)' });
  }
  if (s.app.negativeHits != null) {
    tiles.push({ id: 'negative-hits', label: 'Negative hits', value: formatCount(s.app.negativeHits), hint: 'unknown ids answered from the cache' });
  }
  if (s.app.staleServed != null) {
    tiles.push({ id: 'stale-served', label: 'Stale served', value: formatCount(s.app.staleServed), hint: 'expired entries served while one refresh ran' });
  }
  tiles.push(
    { id: 'memory', label: 'Redis memory', value: typeof srv.used_memory_human === 'string' ? srv.used_memory_human : '—', hint: 'used_memory_human' },
    { id: 'clients', label: 'Connected clients', value: formatCount(num(srv.connected_clients)), hint: 'connections to Redis now' },
    { id: 'commands', label: 'Redis commands', value: formatCount(num(srv.total_commands_processed)), hint: 'total_commands_processed' },
    {
      id: 'keyspace',
      label: 'Redis keyspace hit rate',
      value: num(srv.keyspace_hits) != null && num(srv.keyspace_misses) != null
        ? formatPercent(num(srv.hit_rate) ?? hitRate(/** @type {number} */ (srv.keyspace_hits), /** @type {number} */ (srv.keyspace_misses)))
        : '—',
      hint: `server-wide: ${formatCount(num(srv.keyspace_hits))} hits, ${formatCount(num(srv.keyspace_misses))} misses`,
    },
    {
      id: 'redis',
      label: 'Redis',
      value: s.redisConnected ? (typeof srv.redis_version === 'string' ? `v${srv.redis_version}` : 'connected') : 'disconnected',
      hint: s.redisConnected ? `up ${formatUptime(num(srv.uptime_in_seconds))}, ${formatCount(num(srv.expired_keys))} expired, ${formatCount(num(srv.evicted_keys))} evicted` : 'served from PostgreSQL meanwhile',
    },
  );
  return tiles;
}

/**
 * Rows of the per-tier table, memory (L1) first.
 * @param {Stats} s
 */
export function tierRows(s) {
  const order = ['memory', 'redis'];
  return Object.entries(s.app.tiers)
    .sort(([a], [b]) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99) || a.localeCompare(b))
    .map(([name, t]) => ({
      tier: name,
      hits: formatCount(t.hits),
      misses: formatCount(t.misses),
      errors: formatCount(t.errors),
      hitRate: formatPercent(t.hitRate),
    }));
}

/**
 * Hit rate over time: cumulative (as the API reports it) and per interval (from count deltas).
 */
export class HitRateSeries {
  /** @param {number} [capacity] */
  constructor(capacity = 90) {
    this.capacity = capacity;
    /** @type {{t: number, cumulative: number|null, interval: number|null, lookups: number}[]} */
    this.points = [];
    /** @type {{hits: number, misses: number}|null} */
    this.last = null;
  }

  /**
   * @param {Stats} s
   * @param {number} t time in ms
   */
  push(s, t) {
    let interval = null;
    let lookups = 0;
    if (this.last) {
      const dh = s.app.hits - this.last.hits;
      const dm = s.app.misses - this.last.misses;
      // Counters going down means the API restarted: start the deltas again.
      if (dh >= 0 && dm >= 0) {
        lookups = dh + dm;
        interval = hitRate(dh, dm);
      }
    }
    this.last = { hits: s.app.hits, misses: s.app.misses };
    const cumulative = s.app.hits + s.app.misses > 0 ? s.app.hitRate : null;
    this.points.push({ t, cumulative, interval, lookups });
    if (this.points.length > this.capacity) this.points.splice(0, this.points.length - this.capacity);
  }
}
