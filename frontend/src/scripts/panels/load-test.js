// @ts-check
/** Load test: N lookups over the first K products, bars of mean server time per source. */
import { formatCount, formatFactor, formatMs } from '../../lib/format.js';
import { messageFor } from '../../lib/messages.js';
import { clampInt, runLoadTest } from '../../lib/runners.js';
import { KIND_COLOURS, KIND_LABELS } from '../../lib/timeline.js';
import { el, say, scope, setBusy } from '../dom.js';

/**
 * @param {HTMLElement} root `#load-panel` (LoadTestPanel.astro)
 * @param {import('../context.js').Context} ctx
 */
export function mount(root, ctx) {
  const $ = scope(root);

  /** @param {Awaited<ReturnType<typeof runLoadTest>>} r */
  function render(r) {
    const groups = r.summary;
    const db = groups.find((g) => g.kind === 'database');
    const cacheGroups = groups.filter((g) => g.kind === 'redis' || g.kind === 'memory' || g.kind === 'cache');
    const cacheCount = cacheGroups.reduce((a, g) => a + g.count, 0);
    const cacheMean = cacheCount ? cacheGroups.reduce((a, g) => a + (g.meanMs ?? 0) * g.count, 0) / cacheCount : null;
    const factor = db?.meanMs != null && cacheMean != null ? db.meanMs / Math.max(cacheMean, 0.001) : null;
    $.setText(
      'load-summary',
      `${r.shots.length} requests in ${formatMs(r.elapsedMs)} (${formatCount((r.shots.length / Math.max(r.elapsedMs, 1)) * 1000)} req/s). ` +
        (factor != null ? `Cache answers were ${formatFactor(factor)} faster than database reads (mean server time).` : 'Run with "Clear cache first" to compare database and cache.'),
    );
    $.get('load-bars').replaceChildren(
      ...groups.map((g) =>
        el(
          'div',
          { 'data-kind': g.kind, class: 'load-bar' },
          el(
            'div',
            { class: 'flex flex-wrap items-baseline justify-between gap-x-3 text-sm' },
            el('span', { class: 'font-medium text-slate-100', text: `${KIND_LABELS[g.kind]} · ${g.count} ${g.count === 1 ? 'request' : 'requests'}` }),
            el('span', { class: 'font-mono text-xs text-slate-300', text: `mean ${formatMs(g.meanMs)} · p50 ${formatMs(g.p50Ms)} · p95 ${formatMs(g.p95Ms)}` }),
          ),
          el(
            'div',
            { class: 'mt-1 h-4 overflow-hidden rounded bg-slate-800', role: 'img', 'aria-label': `${KIND_LABELS[g.kind]}: mean ${formatMs(g.meanMs)}` },
            el('div', { class: 'h-full rounded', style: { width: `${g.barPercent.toFixed(1)}%`, background: KIND_COLOURS[g.kind] } }),
          ),
        ),
      ),
    );
    $.get('load-result').hidden = false;
  }

  $.get('load-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const errorBox = $.get('load-error');
    const num = (/** @type {string} */ id, /** @type {number} */ min, /** @type {number} */ max, /** @type {number} */ dflt) => {
      const input = $.input(id);
      const v = clampInt(input.value, min, max, dflt);
      input.value = String(v);
      return v;
    };
    const n = num('load-n', 1, 2000, 60);
    const distinct = num('load-distinct', 1, 100, 15);
    const concurrency = num('load-concurrency', 1, 32, 4);
    const clearFirst = $.input('load-clear').checked;
    const progress = $.get('load-progress');
    const progressBar = $.get('load-progress-bar');
    const showProgress = (/** @type {number} */ done) => {
      progress.setAttribute('aria-valuemax', String(n));
      progress.setAttribute('aria-valuenow', String(done));
      progressBar.style.width = `${((done / n) * 100).toFixed(1)}%`;
    };
    showProgress(0);
    say(errorBox, '');
    const button = $.get('load-run');
    setBusy(button, true);
    button.textContent = 'Running…';
    try {
      const r = await runLoadTest({
        token: ctx.token(),
        api: ctx.api,
        n,
        distinct,
        concurrency,
        clearFirst,
        onShot: (_shot, done) => showProgress(done),
      });
      render(r);
      const failed = r.shots.filter((s) => !s.ok);
      if (failed.length) say(errorBox, `${failed.length} of ${n} requests failed: ${failed[0].error}`);
    } catch (e) {
      say(errorBox, `The load test could not run: ${messageFor(e)}`);
    } finally {
      setBusy(button, false);
      button.textContent = 'Run load test';
    }
  });
}
