// @ts-check
/** The latency timeline of this page's own product lookups, and the speed-up it shows. */

/** @typedef {'database'|'memory'|'redis'|'cache'|'error'} Kind */

/** Colours per kind (Tailwind palette values, also used in the legend). */
export const KIND_COLOURS = /** @type {Record<Kind, string>} */ ({
  database: '#f59e0b', // amber-500
  redis: '#ef4444', // red-500
  memory: '#10b981', // emerald-500
  cache: '#38bdf8', // sky-400: a cache answer whose tier the API does not name
  error: '#64748b', // slate-500
});

export const KIND_LABELS = /** @type {Record<Kind, string>} */ ({
  database: 'database',
  redis: 'cache · Redis',
  memory: 'cache · memory',
  cache: 'cache',
  error: 'error',
});

/**
 * @param {{ok?: boolean, source?: string, tier?: string|null}} e
 * @returns {Kind}
 */
export function classify(e) {
  if (e.ok === false) return 'error';
  if (e.source === 'database') return 'database';
  if (e.source === 'cache') {
    if (e.tier === 'memory') return 'memory';
    if (e.tier === 'redis') return 'redis';
    return 'cache';
  }
  return 'error';
}

/**
 * @param {number[]} values
 * @returns {number|null}
 */
export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/**
 * Nearest-rank percentile (p in 0..100).
 * @param {number[]} values
 * @param {number} p
 */
export function percentile(values, p) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const rank = Math.min(v.length, Math.max(1, Math.ceil((p / 100) * v.length)));
  return v[rank - 1];
}

/** @param {number[]} values */
export function mean(values) {
  const v = values.filter((x) => Number.isFinite(x));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
}

/**
 * @typedef {object} Entry
 * @property {number} seq
 * @property {number} at wall-clock ms
 * @property {string} label what was asked, e.g. "#5"
 * @property {Kind} kind
 * @property {number|null} serverMs fetch_time_ms reported by the API
 * @property {number|null} roundTripMs measured by the browser
 */

export class Timeline {
  /** @param {number} [capacity] */
  constructor(capacity = 60) {
    this.capacity = capacity;
    /** @type {Entry[]} */
    this.entries = [];
    this.seq = 0;
  }

  /**
   * @param {{label: string, ok?: boolean, source?: string, tier?: string|null, serverMs?: number|null, roundTripMs?: number|null, at?: number}} e
   * @returns {Entry}
   */
  add(e) {
    const entry = {
      seq: ++this.seq,
      at: e.at ?? Date.now(),
      label: e.label,
      kind: classify(e),
      serverMs: e.serverMs ?? null,
      roundTripMs: e.roundTripMs ?? null,
    };
    this.entries.push(entry);
    if (this.entries.length > this.capacity) this.entries.splice(0, this.entries.length - this.capacity);
    return entry;
  }

  clear() {
    this.entries = [];
  }
}

/**
 * Cache vs database: medians of the server-side time, and how many times faster the cache is.
 * @param {{kind: Kind, serverMs: number|null}[]} entries
 */
export function speedup(entries) {
  const ms = (/** @type {(k: Kind) => boolean} */ pick) =>
    entries.filter((e) => pick(e.kind) && e.serverMs != null).map((e) => /** @type {number} */ (e.serverMs));
  const db = ms((k) => k === 'database');
  const cache = ms((k) => k === 'memory' || k === 'redis' || k === 'cache');
  const dbMedian = median(db);
  const cacheMedian = median(cache);
  // Sub-microsecond cache answers would make the factor meaningless: floor at 1 µs.
  const factor = dbMedian != null && cacheMedian != null ? dbMedian / Math.max(cacheMedian, 0.001) : null;
  return { dbMedian, cacheMedian, dbCount: db.length, cacheCount: cache.length, factor };
}

/**
 * A log10 scale from [min, max] (both > 0) onto [r0, r1].
 * @param {number} min
 * @param {number} max
 * @param {number} r0
 * @param {number} r1
 */
export function logScale(min, max, r0, r1) {
  const lo = Math.log10(min);
  const hi = Math.log10(max);
  const span = hi - lo || 1;
  return (/** @type {number} */ v) => {
    const x = Math.log10(Math.min(max, Math.max(min, v)));
    return r0 + ((x - lo) / span) * (r1 - r0);
  };
}

/**
 * Domain of the log axis: whole powers of ten around the values (at least 0.01 … 10 ms).
 * @param {number[]} values
 */
export function logDomain(values) {
  const v = values.filter((x) => Number.isFinite(x) && x > 0);
  const lo = v.length ? Math.min(...v) : 0.01;
  const hi = v.length ? Math.max(...v) : 10;
  const min = Math.min(0.01, 10 ** Math.floor(Math.log10(lo)));
  const max = Math.max(10, 10 ** Math.ceil(Math.log10(hi)));
  /** @type {number[]} */
  const ticks = [];
  for (let p = Math.round(Math.log10(min)); p <= Math.round(Math.log10(max)); p++) ticks.push(10 ** p);
  return { min, max, ticks };
}

/**
 * Bars for the timeline chart in an SVG of `width` × `height` (plot area inside `pad`).
 * @param {Entry[]} entries
 * @param {{width: number, height: number, pad: {left: number, right: number, top: number, bottom: number}, slots?: number}} box
 */
export function timelineBars(entries, box) {
  const { width, height, pad } = box;
  const slots = Math.max(box.slots ?? entries.length, entries.length, 1);
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const values = entries.map((e) => e.serverMs ?? NaN);
  const domain = logDomain(values);
  const y = logScale(domain.min, domain.max, pad.top + plotH, pad.top);
  const slotW = plotW / slots;
  const barW = Math.max(1, Math.min(24, slotW * 0.7));
  const bars = entries.map((e, i) => {
    const v = e.serverMs != null && e.serverMs > 0 ? e.serverMs : domain.min;
    const top = e.kind === 'error' ? pad.top + plotH - 4 : y(v);
    return {
      x: pad.left + i * slotW + (slotW - barW) / 2,
      y: top,
      w: barW,
      h: Math.max(2, pad.top + plotH - top),
      kind: e.kind,
      colour: KIND_COLOURS[e.kind],
      entry: e,
    };
  });
  const ticks = domain.ticks.map((t) => ({ value: t, y: y(t) }));
  return { bars, ticks, plot: { x: pad.left, y: pad.top, w: plotW, h: plotH } };
}

/**
 * An SVG polyline "x,y x,y …" for values 0..100 over `count` slots; gaps (null) split the line.
 * @param {(number|null)[]} values
 * @param {{x: number, y: number, w: number, h: number}} plot
 * @param {number} [slots]
 * @returns {string[]} one points string per unbroken run
 */
export function percentLines(values, plot, slots) {
  const n = Math.max(slots ?? values.length, 2);
  const step = plot.w / (n - 1);
  /** @type {string[]} */
  const runs = [];
  /** @type {string[]} */
  let current = [];
  values.forEach((v, i) => {
    if (v == null || !Number.isFinite(v)) {
      if (current.length) runs.push(current.join(' '));
      current = [];
      return;
    }
    const x = plot.x + i * step;
    const y = plot.y + plot.h - (Math.min(100, Math.max(0, v)) / 100) * plot.h;
    current.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  });
  if (current.length) runs.push(current.join(' '));
  return runs;
}
