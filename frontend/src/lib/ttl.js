// @ts-check
/** The remaining TTL of a product's cache entry, counted down between fetches. */

/**
 * @param {any} json body of GET /cache/entries/{id}
 * @param {number} fetchedAt ms (monotonic clock)
 */
export function readEntry(json, fetchedAt) {
  return {
    key: typeof json?.key === 'string' ? json.key : '',
    cached: json?.cached === true,
    /** an unknown id remembered as absent */
    negative: json?.negative === true,
    ttlSeconds: typeof json?.ttl_seconds === 'number' && Number.isFinite(json.ttl_seconds) ? json.ttl_seconds : null,
    fetchedAt,
  };
}

/**
 * Seconds left now, or null when there is no entry or it never expires.
 * @param {ReturnType<typeof readEntry>} entry
 * @param {number} now ms (same clock as fetchedAt)
 */
export function remainingSeconds(entry, now) {
  if (!(entry.cached || entry.negative) || entry.ttlSeconds == null) return null;
  return Math.max(0, entry.ttlSeconds - Math.floor((now - entry.fetchedAt) / 1000));
}

/**
 * Width (0..100) of the TTL bar against the largest TTL seen for this key.
 * @param {number|null} remaining
 * @param {number|null} full
 */
export function ttlPercent(remaining, full) {
  if (remaining == null || full == null || full <= 0) return 0;
  return Math.max(0, Math.min(100, (remaining / full) * 100));
}
