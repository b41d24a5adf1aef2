// @ts-check
/** Hit rate over time: cumulative and per-interval hit rate from the statistics polls. */
import { clockTime, formatPercent } from '../../lib/format.js';
import { HitRateSeries } from '../../lib/stats.js';
import { percentLines } from '../../lib/timeline.js';
import { STATS_INTERVAL_MS } from '../context.js';
import { chartWidth, scope, svg } from '../dom.js';

/**
 * @param {HTMLElement} root `#hitrate-panel` (HitRatePanel.astro)
 * @param {import('../context.js').Context} ctx
 * @returns {{redraw: () => void}}
 */
export function mount(root, ctx) {
  const $ = scope(root);
  const chart = $.chart('hitrate-chart');
  const hitRates = new HitRateSeries(90);

  function render() {
    const W = chartWidth(chart, 400);
    const H = 200;
    chart.setAttribute('viewBox', `0 0 ${W} ${H}`);
    const plot = { x: 40, y: 12, w: W - 40 - 10, h: H - 12 - 26 };
    const desc = chart.querySelector('desc');
    const nodes = [];
    for (const pct of [0, 50, 100]) {
      const y = plot.y + plot.h - (pct / 100) * plot.h;
      nodes.push(svg('line', { x1: plot.x, x2: plot.x + plot.w, y1: y, y2: y, stroke: '#334155', 'stroke-dasharray': pct === 0 ? '' : '3 4' }));
      nodes.push(svg('text', { x: plot.x - 6, y: y + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#94a3b8' }, `${pct}%`));
    }
    const pts = hitRates.points;
    // The window grows with the samples up to its capacity, so a young chart is not a sliver.
    const slots = Math.max(15, Math.min(hitRates.capacity, pts.length));
    // Right-align: the newest sample sits at the right edge.
    const offset = slots - pts.length;
    const pad = (/** @type {(number|null)[]} */ v) => [...new Array(offset).fill(null), ...v];
    for (const line of percentLines(pad(pts.map((p) => p.cumulative)), plot, slots)) {
      nodes.push(svg('polyline', { points: line, fill: 'none', stroke: '#38bdf8', 'stroke-width': 2.5, 'stroke-linejoin': 'round', class: 'hitrate-line' }));
    }
    const step = plot.w / (slots - 1);
    pts.forEach((p, i) => {
      if (p.interval == null) return;
      const x = plot.x + (offset + i) * step;
      const y = plot.y + plot.h - (p.interval / 100) * plot.h;
      nodes.push(
        svg('circle', { cx: x.toFixed(1), cy: y.toFixed(1), r: 3, fill: '#34d399', class: 'hitrate-point' }, svg('title', {}, `${formatPercent(p.interval)} of ${p.lookups} lookups at ${clockTime(new Date(p.t))}`)),
      );
    });
    nodes.push(svg('text', { x: plot.x, y: H - 6, 'text-anchor': 'start', 'font-size': 11, fill: '#94a3b8' }, `${Math.round(((slots - 1) * STATS_INTERVAL_MS) / 1000)} s ago`));
    nodes.push(svg('text', { x: plot.x + plot.w, y: H - 6, 'text-anchor': 'end', 'font-size': 11, fill: '#94a3b8' }, 'now →'));
    if (pts.every((p) => p.cumulative == null)) {
      nodes.push(svg('text', { x: plot.x + plot.w / 2, y: plot.y + plot.h / 2, 'text-anchor': 'middle', 'font-size': 13, fill: '#64748b' }, 'No lookups counted yet'));
    }
    chart.replaceChildren(...(desc ? [desc] : []), ...nodes);
    const last = pts[pts.length - 1];
    $.setText('hitrate-now', last && last.cumulative != null ? formatPercent(last.cumulative) : '—');
  }

  ctx.events.on('stats', (stats) => {
    if (!stats) return;
    hitRates.push(stats, Date.now());
    render();
  });
  render();
  return { redraw: render };
}
