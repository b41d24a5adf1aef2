// @ts-check
/** What the page says when something fails: one sentence for a person, from any error. */
import { ApiError, PRODUCT_NOT_FOUND } from './api.js';

/**
 * A message for a person from any error.
 * @param {unknown} e
 * @param {string} [what] e.g. "product 42"
 */
export function messageFor(e, what) {
  if (e instanceof ApiError) {
    if (e.status === 0) return e.detail;
    if (e.status === 404 && e.detail === PRODUCT_NOT_FOUND) return `${what ? `No ${what}` : 'Not found'}: ${e.detail} (404).`;
    if (e.status === 401) return `${e.detail} (401): writes and cache clears need the admin token; type it in the "Admin token" field of the edit form.`;
    if (e.status === 403) return `${e.detail} (403): this instance accepts no writes at all.`;
    const retry = e.retryAfter ? ` Retry in ${e.retryAfter} s.` : '';
    return `${e.detail} (${e.status}${e.title ? ` ${e.title}` : ''}).${retry}`;
  }
  return e instanceof Error ? e.message : String(e);
}
