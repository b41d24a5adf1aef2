// @ts-check
/** Cache entry: the Redis key of the product looked up last and its TTL, counting down. */
import { ApiError, isMissingEndpoint } from '../../lib/api.js';
import { formatTtl } from '../../lib/format.js';
import { messageFor } from '../../lib/messages.js';
import { readEntry, remainingSeconds, ttlPercent } from '../../lib/ttl.js';
import { say, scope } from '../dom.js';

/**
 * Hidden until GET /cache/entries/{id} is known to exist (`ctx.features.entries`).
 * @param {HTMLElement} root `#ttl-panel` (CacheEntryPanel.astro)
 * @param {import('../context.js').Context} ctx
 */
export function mount(root, ctx) {
  const $ = scope(root);
  /** the product looked up last */
  /** @type {number|null} */
  let currentId = null;
  /** @type {ReturnType<typeof readEntry>|null} */
  let entry = null;
  /** largest TTL seen per key, for the bar */
  /** @type {Map<string, number>} */
  const fullTtl = new Map();

  async function probe() {
    try {
      await ctx.api.cacheEntry(1);
      ctx.features.entries = true;
    } catch (e) {
      // A product that is not there still proves the endpoint exists.
      ctx.features.entries = !isMissingEndpoint(e) && e instanceof ApiError && e.status !== 0;
    }
    root.hidden = !ctx.features.entries;
  }

  async function refresh() {
    if (!ctx.features.entries || currentId == null) return;
    const id = currentId;
    const errorBox = $.get('ttl-error');
    try {
      const { data } = await ctx.api.cacheEntry(id);
      if (id !== currentId) return;
      const fresh = readEntry(data, performance.now());
      entry = fresh;
      if (fresh.cached && fresh.ttlSeconds != null) {
        const seen = fullTtl.get(fresh.key) ?? 0;
        // A fresh fill (TTL jumps up) resets the bar's reference.
        fullTtl.set(fresh.key, fresh.ttlSeconds > seen || seen === 0 ? fresh.ttlSeconds : seen);
      }
      say(errorBox, '');
      render();
    } catch (e) {
      if (isMissingEndpoint(e)) {
        ctx.features.entries = false;
        root.hidden = true;
        return;
      }
      say(errorBox, messageFor(e, `cache entry for product ${id}`));
    }
  }

  function render() {
    $.get('ttl-empty').hidden = entry != null;
    $.get('ttl-body').hidden = entry == null;
    if (!entry) return;
    $.setText('ttl-key', entry.key || `product ${currentId}`);
    const left = remainingSeconds(entry, performance.now());
    const stateNode = $.get('ttl-state');
    stateNode.dataset.cached = String(entry.cached);
    if (entry.negative) {
      stateNode.textContent = 'remembered as absent (negative entry)';
      stateNode.className = 'text-sm font-medium text-sky-300';
      $.setText('ttl-value', formatTtl(left));
    } else if (!entry.cached) {
      stateNode.textContent = 'not cached';
      stateNode.className = 'text-sm font-medium text-amber-300';
      $.setText('ttl-value', '—');
    } else {
      stateNode.textContent = entry.ttlSeconds == null ? 'cached, no expiry' : 'cached, expires in';
      stateNode.className = 'text-sm font-medium text-emerald-300';
      $.setText('ttl-value', formatTtl(left));
    }
    $.get('ttl-value').dataset.seconds = left == null ? '' : String(left);
    $.get('ttl-bar').style.width = `${ttlPercent(left, fullTtl.get(entry.key) ?? null)}%`;
  }

  ctx.events.on('looked-up', ({ id }) => {
    currentId = id;
    void refresh();
  });
  ctx.events.on('cache-changed', () => void refresh());
  // Each statistics poll also re-reads the entry, so an expiry or eviction shows.
  ctx.events.on('stats', () => void refresh());
  // The TTL counts down between fetches.
  setInterval(() => {
    if (entry && !document.hidden) render();
  }, 1000);
  void probe();
}
