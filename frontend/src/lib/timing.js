// @ts-check
/** What response headers tell about a request: `Server-Timing` and the trace id. */

/**
 * Parses a Server-Timing header: `cache;dur=0.12, db;dur=3.4;desc="PostgreSQL"`.
 * @param {string|null|undefined} header
 * @returns {{name: string, dur: number|null, desc: string}[]}
 */
export function parseServerTiming(header) {
  if (!header) return [];
  return header
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const [name, ...params] = part.split(';').map((p) => p.trim());
      let dur = null;
      let desc = '';
      for (const p of params) {
        const eq = p.indexOf('=');
        if (eq < 0) continue;
        const key = p.slice(0, eq).trim().toLowerCase();
        const value = p.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
        if (key === 'dur') {
          const n = Number(value);
          dur = Number.isFinite(n) ? n : null;
        } else if (key === 'desc') desc = value;
      }
      return { name, dur, desc };
    })
    .filter((m) => /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(m.name));
}

/**
 * The trace id of a response: W3C `traceparent`, else `x-trace-id` / `trace-id` (32 hex digits).
 * @param {(name: string) => string|null} get header lookup (e.g. `headers.get.bind(headers)`)
 * @returns {string|null}
 */
export function traceIdFrom(get) {
  const tp = get('traceparent');
  if (tp) {
    const m = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/i.exec(tp.trim());
    if (m && !/^0+$/.test(m[1])) return m[1].toLowerCase();
  }
  for (const name of ['x-trace-id', 'trace-id']) {
    const v = get(name)?.trim();
    if (v && /^[0-9a-f]{16,32}$/i.test(v) && !/^0+$/.test(v)) return v.toLowerCase();
  }
  return null;
}

/**
 * Link to one trace in Jaeger's UI, or null without a usable base.
 * @param {string|null|undefined} jaegerBase
 * @param {string} traceId
 */
export function jaegerTraceUrl(jaegerBase, traceId) {
  const base = (jaegerBase ?? '').trim().replace(/\/+$/, '');
  if (!/^https?:\/\//i.test(base)) return null;
  return `${base}/trace/${encodeURIComponent(traceId)}`;
}
