// @ts-check
/**
 * What every panel is given: the API client, what the API offers, a poller bound to the
 * tab's visibility, the admin token, and events. A panel keeps its own state inside
 * `mount`; what other panels must know travels as an event. The one shared record is
 * `features` (what the API offers), written only by the probes of the cache entry and
 * edit panels.
 */
import { createPoller } from '../lib/poller.js';

/** How often the statistics are fetched; the hit-rate chart's time axis follows it. */
export const STATS_INTERVAL_MS = 2000;

/**
 * @typedef {Parameters<import('../lib/timeline.js').Timeline['add']>[0]} Recorded
 * @typedef {{create: boolean, update: boolean, put: boolean, remove: boolean}} Writes
 * @typedef {{id: number, product: any, roundTripMs: number}} Shown a product answer
 */

/**
 * The page's events and what each carries.
 * @typedef {object} PageEvents
 * @property {Recorded} recorded a lookup ended (timeline)
 * @property {Shown} looked-up the user looked a product up (cache entry, edit form)
 * @property {Shown} product a fresh answer for a product, e.g. an edit's read-back (lookup shows it if it is the one shown)
 * @property {{id: string, reveal: boolean}} lookup please look this id up (catalogue rows)
 * @property {void} cache-changed the cache may have changed: clear, stampede, write (cache entry)
 * @property {void} products-changed a product was written (catalogue)
 * @property {import('../lib/stats.js').Stats|null} stats a statistics poll ended, null when it failed
 */

/**
 * Typed publish/subscribe; handlers run synchronously, in the order they subscribed. A
 * handler that throws does not stop the others: its error is rethrown on its own (it
 * still reaches the console and the end-to-end tests' page-error check).
 * @template {object} M
 */
export class Events {
  /** @type {Map<keyof M, Set<(value: any) => void>>} */
  #handlers = new Map();

  /**
   * @template {keyof M} K
   * @param {K} name
   * @param {(value: M[K]) => void} fn
   */
  on(name, fn) {
    let set = this.#handlers.get(name);
    if (!set) this.#handlers.set(name, (set = new Set()));
    set.add(fn);
  }

  /**
   * @template {keyof M} K
   * @param {K} name
   * @param {M[K]} [value]
   */
  emit(name, value) {
    for (const fn of this.#handlers.get(name) ?? []) {
      try {
        fn(value);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
}

/**
 * @param {{api: ReturnType<typeof import('../lib/api.js').createApi>,
 *   token: () => string, askForToken: () => void}} o
 */
export function createContext(o) {
  /** @type {Events<PageEvents>} */
  const events = new Events();
  return {
    api: o.api,
    events,
    /** What the API offers, filled in by the panels' probes (null: not probed yet). */
    features: {
      /** @type {boolean|null} GET /cache/entries/{id} */
      entries: null,
      /** @type {Writes} what /openapi.json lists */
      writes: { create: false, update: false, put: false, remove: false },
    },
    /** The admin token the user typed (kept only in its field) and a way to ask for it. */
    token: o.token,
    askForToken: o.askForToken,

    /**
     * A poller that stops while the tab is hidden and resumes as soon as it is shown.
     * @param {Omit<Parameters<typeof createPoller>[0], 'isHidden'>} options
     */
    poll(options) {
      const poller = createPoller({ ...options, isHidden: () => document.hidden });
      document.addEventListener('visibilitychange', () => poller.visibilityChanged());
      return poller;
    },

    /**
     * GET /products/{id}, recorded in the timeline whatever happens.
     * @param {number} id
     */
    async fetchProduct(id) {
      try {
        const answer = await o.api.getProduct(id);
        const d = answer.data;
        events.emit('recorded', {
          label: `#${id}`,
          ok: true,
          source: d.source,
          tier: d.cache_tier ?? null,
          serverMs: typeof d.fetch_time_ms === 'number' ? d.fetch_time_ms : null,
          roundTripMs: answer.roundTripMs,
        });
        return answer;
      } catch (e) {
        events.emit('recorded', { label: `#${id}`, ok: false, roundTripMs: null });
        throw e;
      }
    },
  };
}

/** @typedef {ReturnType<typeof createContext>} Context */
