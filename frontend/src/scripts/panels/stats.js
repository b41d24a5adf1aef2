// @ts-check
/** Cache statistics: tiles and the per-tier table, polled while the tab is visible. */
import { clockTime } from '../../lib/format.js';
import { messageFor } from '../../lib/messages.js';
import { normaliseStats, statTiles, tierRows } from '../../lib/stats.js';
import { STATS_INTERVAL_MS } from '../context.js';
import { el, say, scope } from '../dom.js';

const STATE_TEXT = {
  running: `Live: refreshes every ${STATS_INTERVAL_MS / 1000} s.`,
  paused: 'Paused while this tab is hidden.',
  stopped: 'Paused. Press Resume or Refresh now.',
};

/**
 * @param {HTMLElement} root `#stats-panel` (StatsPanel.astro)
 * @param {import('../context.js').Context} ctx
 */
export function mount(root, ctx) {
  const $ = scope(root);

  async function refresh() {
    const errorBox = $.get('stats-error');
    /** @type {import('../../lib/stats.js').Stats|null} */
    let stats = null;
    try {
      const { data } = await ctx.api.stats();
      const s = normaliseStats(data);
      say(errorBox, s.redisConnected ? '' : 'Redis is disconnected: products are served from PostgreSQL, and Redis counters are unavailable.');
      renderTiles(s);
      stats = s;
    } catch (e) {
      say(errorBox, `Statistics unavailable: ${messageFor(e)}`);
    }
    ctx.events.emit('stats', stats);
    if (stats) $.setText('stats-updated', `· updated ${clockTime(new Date())}`);
  }

  /** @param {import('../../lib/stats.js').Stats} s */
  function renderTiles(s) {
    $.get('stats-tiles').replaceChildren(
      ...statTiles(s).map((t) =>
        el(
          'div',
          { class: 'tile', 'data-stat': t.id, title: t.hint },
          el('div', { class: 'text-xs text-slate-400', text: t.label }),
          el('div', { class: 'mt-1 font-mono text-xl font-semibold text-white', 'data-value': '', text: t.value }),
          el('div', { class: 'mt-0.5 truncate text-[11px] text-slate-500', text: t.hint }),
        ),
      ),
    );
    const rows = tierRows(s);
    $.get('tier-table').hidden = rows.length === 0;
    $.get('tier-rows').replaceChildren(
      ...rows.map((r) =>
        el(
          'tr',
          { 'data-tier': r.tier, class: 'border-t border-slate-800' },
          el('th', { scope: 'row', class: 'py-1 pr-3 font-sans font-medium', text: r.tier }),
          el('td', { class: 'py-1 pr-3 text-right', text: r.hits }),
          el('td', { class: 'py-1 pr-3 text-right', text: r.misses }),
          el('td', { class: 'py-1 pr-3 text-right', text: r.errors }),
          el('td', { class: 'py-1 text-right', text: r.hitRate }),
        ),
      ),
    );
  }

  const label = $.get('stats-state');
  const poller = ctx.poll({
    task: refresh,
    intervalMs: STATS_INTERVAL_MS,
    onState: (s) => {
      label.dataset.state = s;
      label.textContent = STATE_TEXT[s];
    },
  });
  const toggle = $.get('stats-toggle');
  toggle.addEventListener('click', () => {
    if (poller.running) {
      poller.stop();
      toggle.textContent = 'Resume';
      toggle.setAttribute('aria-pressed', 'true');
    } else {
      poller.start();
      toggle.textContent = 'Pause';
      toggle.setAttribute('aria-pressed', 'false');
    }
  });
  $.get('stats-refresh').addEventListener('click', () => {
    if (poller.running) void poller.refreshNow();
    else void refresh();
  });
  poller.start();
}
