// @ts-check
/** Pagination over GET /products?limit=&offset=, which returns a plain array (no total). */

export const PAGE_SIZES = [5, 10, 20];

/**
 * Ask for one more than a page to learn whether a next page exists.
 * @param {number} page 0-based
 * @param {number} size
 */
export function pageRequest(page, size) {
  return { limit: Math.min(100, size + 1), offset: Math.max(0, page) * size };
}

/**
 * @template T
 * @param {T[]} received what the API answered for pageRequest(page, size)
 * @param {number} page
 * @param {number} size
 */
export function pageView(received, page, size) {
  const items = received.slice(0, size);
  const first = page * size + 1;
  return {
    items,
    page,
    hasPrev: page > 0,
    hasNext: received.length > size,
    summary: items.length === 0 ? (page === 0 ? 'No products.' : 'No products on this page.') : `Products ${first}–${first + items.length - 1}`,
  };
}
