// @ts-check
/** Latency timeline: the last lookups as bars on a log scale, and the cache speed-up. */
import { formatFactor, formatMs } from '../../lib/format.js';
import { KIND_LABELS, Timeline, speedup, timelineBars } from '../../lib/timeline.js';
import { chartWidth, scope, svg } from '../dom.js';

const TIMELINE_SLOTS = 40;

/** @param {number} v */
function tickLabel(v) {
  if (v >= 1000) return `${v / 1000} s`;
  if (v >= 1) return `${v} ms`;
  return `${Number(v.toPrecision(1))} ms`;
}

/**
 * @param {HTMLElement} root `#timeline-panel` (TimelinePanel.astro)
 * @param {import('../context.js').Context} ctx
 * @returns {{redraw: () => void}}
 */
export function mount(root, ctx) {
  const $ = scope(root);
  const chart = $.chart('timeline-chart');
  const timeline = new Timeline(TIMELINE_SLOTS);

  function render() {
    // Draw in CSS pixels so labels keep their size at any width.
    const W = chartWidth(chart, 640);
    const H = 220;
    chart.setAttribute('viewBox', `0 0 ${W} ${H}`);
    const pad = { left: 52, right: 10, top: 12, bottom: 26 };
    const { bars, ticks, plot } = timelineBars(timeline.entries, { width: W, height: H, pad, slots: TIMELINE_SLOTS });
    const desc = chart.querySelector('desc');
    const nodes = [];
    for (const t of ticks) {
      nodes.push(svg('line', { x1: plot.x, x2: plot.x + plot.w, y1: t.y, y2: t.y, stroke: '#334155', 'stroke-width': 1, 'stroke-dasharray': '3 4' }));
      nodes.push(svg('text', { x: plot.x - 6, y: t.y + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#94a3b8' }, tickLabel(t.value)));
    }
    nodes.push(svg('line', { x1: plot.x, x2: plot.x + plot.w, y1: plot.y + plot.h, y2: plot.y + plot.h, stroke: '#64748b' }));
    nodes.push(svg('text', { x: plot.x + plot.w, y: H - 6, 'text-anchor': 'end', 'font-size': 11, fill: '#94a3b8' }, `last ${TIMELINE_SLOTS} lookups →`));
    if (bars.length === 0) {
      nodes.push(svg('text', { x: plot.x + plot.w / 2, y: plot.y + plot.h / 2, 'text-anchor': 'middle', 'font-size': 13, fill: '#64748b' }, 'No lookups yet'));
    }
    for (const b of bars) {
      const e = b.entry;
      const title = `${e.label} · ${KIND_LABELS[e.kind]} · ${e.kind === 'error' ? 'failed' : `${formatMs(e.serverMs)} server, ${formatMs(e.roundTripMs)} round trip`}`;
      nodes.push(svg('rect', { x: b.x.toFixed(1), y: b.y.toFixed(1), width: b.w.toFixed(1), height: b.h.toFixed(1), rx: 2, fill: b.colour, 'data-kind': b.kind, class: 'timeline-bar' }, svg('title', {}, title)));
    }
    chart.replaceChildren(...(desc ? [desc] : []), ...nodes);

    const s = speedup(timeline.entries);
    const factor = $.get('speedup-factor');
    factor.textContent = formatFactor(s.factor);
    factor.dataset.factor = s.factor == null ? '' : s.factor.toFixed(3);
    if (s.factor == null) {
      $.setText(
        'speedup-detail',
        s.dbCount === 0 && s.cacheCount === 0
          ? 'Look up a product twice to compare database and cache.'
          : s.dbCount === 0
            ? 'Only cache answers so far: clear the cache and look up again to see a database read.'
            : 'Only database answers so far: look up the same product again to see a cache hit.',
      );
    } else {
      $.setText('speedup-detail', `Median server time: database ${formatMs(s.dbMedian)} (${s.dbCount}) vs cache ${formatMs(s.cacheMedian)} (${s.cacheCount}).`);
    }
  }

  ctx.events.on('recorded', (entry) => {
    timeline.add(entry);
    render();
  });
  render();
  return { redraw: render };
}
