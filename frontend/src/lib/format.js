// @ts-check
/** Formatting for people: pure functions, no DOM. */

/**
 * Milliseconds with a precision that suits the size: 0.042 ms, 3.41 ms, 182 ms, 1.25 s.
 * @param {number|null|undefined} ms
 */
export function formatMs(ms) {
  if (ms == null || !Number.isFinite(ms)) return '—';
  if (ms < 0) return '—';
  if (ms < 1) return `${ms.toFixed(3)} ms`;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/**
 * A percentage given as 0..100.
 * @param {number|null|undefined} pct
 */
export function formatPercent(pct) {
  if (pct == null || !Number.isFinite(pct)) return '—';
  return `${pct.toFixed(pct === 100 || pct === 0 ? 0 : 1)}%`;
}

/**
 * hits / (hits + misses) × 100, or null when there was no lookup.
 * @param {number} hits
 * @param {number} misses
 */
export function hitRate(hits, misses) {
  const total = hits + misses;
  return total > 0 ? (hits / total) * 100 : null;
}

/**
 * Remaining time to live: "59 min 12 s", "12 s", "1 h 0 min".
 * @param {number|null|undefined} seconds
 */
export function formatTtl(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return '—';
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  const h = Math.floor(s / 3600);
  return `${h} h ${Math.floor((s % 3600) / 60)} min`;
}

/**
 * Seconds of uptime as "3 d 4 h", "2 h 5 min", "42 s".
 * @param {number|null|undefined} seconds
 */
export function formatUptime(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return '—';
  const s = Math.max(0, Math.floor(seconds));
  if (s >= 86400) return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  return formatTtl(s);
}

const priceFormat = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });

/** @param {number|string|null|undefined} price */
export function formatPrice(price) {
  const n = typeof price === 'string' ? Number(price) : price;
  if (n == null || !Number.isFinite(n)) return '—';
  return priceFormat.format(n);
}

/** @param {number|null|undefined} n */
export function formatCount(n) {
  if (n == null || !Number.isFinite(n)) return '—';
  return Math.round(n).toLocaleString('en-US');
}

/**
 * A speed-up factor: "23×", "1.8×".
 * @param {number|null|undefined} factor
 */
export function formatFactor(factor) {
  if (factor == null || !Number.isFinite(factor) || factor <= 0) return '—';
  return factor >= 10 ? `${Math.round(factor)}×` : `${factor.toFixed(1)}×`;
}

/**
 * Where an answer came from, as a badge text: "DATABASE", "CACHE · REDIS", "CACHE · MEMORY".
 * @param {{source?: string, cache_tier?: string}} answer
 */
export function sourceLabel(answer) {
  if (answer.source === 'database') return 'DATABASE';
  if (answer.source === 'cache') return answer.cache_tier ? `CACHE · ${String(answer.cache_tier).toUpperCase()}` : 'CACHE';
  return String(answer.source ?? 'UNKNOWN').toUpperCase();
}

/**
 * A clock time for logs: "14:03:07".
 * @param {Date} date
 */
export function clockTime(date) {
  const p = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return `${p(date.getHours())}:${p(date.getMinutes())}:${p(date.getSeconds())}`;
}
