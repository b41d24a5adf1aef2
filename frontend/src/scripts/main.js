// @ts-check
/**
 * Wires the page: one context (API client, events, poller, admin token), then each panel
 * mounted on its own markup (src/components/<Panel>.astro ↔ ./panels/<panel>.js). The
 * logic lives in ../lib (tested in Node); panels only read inputs, call it, and write text
 * nodes and attributes (never HTML).
 */
import { createApi } from '../lib/api.js';
import { createContext } from './context.js';
import { byId } from './dom.js';
import * as cacheEntry from './panels/cache-entry.js';
import * as catalogue from './panels/catalogue.js';
import * as edit from './panels/edit.js';
import * as health from './panels/health.js';
import * as hitrate from './panels/hitrate.js';
import * as loadTest from './panels/load-test.js';
import * as lookup from './panels/lookup.js';
import * as stampede from './panels/stampede.js';
import * as stats from './panels/stats.js';
import * as timeline from './panels/timeline.js';

export function start() {
  const api = createApi({ base: import.meta.env.PUBLIC_API_BASE ?? '' });
  const ctx = createContext({ api, ...edit.credentials(byId('edit-panel')) });

  // Panels that listen come before the ones that speak first (statistics, lookups).
  const charts = [timeline.mount(byId('timeline-panel'), ctx), hitrate.mount(byId('hitrate-panel'), ctx)];
  cacheEntry.mount(byId('ttl-panel'), ctx);
  lookup.mount(byId('lookup-panel'), ctx);
  health.mount(byId('health-panel'), ctx);
  stats.mount(byId('stats-panel'), ctx);
  stampede.mount(byId('stampede-panel'), ctx);
  loadTest.mount(byId('load-panel'), ctx);
  const cataloguePanel = byId('catalogue-panel');
  catalogue.mount(cataloguePanel, ctx);
  const editor = edit.mount(byId('edit-panel'), ctx);

  // Without the edit form the catalogue takes the whole row.
  void editor.probed.then((shown) => {
    cataloguePanel.classList.toggle('lg:col-span-3', !shown);
    cataloguePanel.classList.toggle('lg:col-span-2', shown);
  });

  // Charts are drawn at their real width; redraw when it changes.
  const main = byId('main');
  let lastWidth = 0;
  new ResizeObserver(() => {
    const w = Math.round(main.getBoundingClientRect().width);
    if (w === lastWidth) return;
    lastWidth = w;
    for (const chart of charts) chart.redraw();
  }).observe(main);

  document.documentElement.dataset.ready = 'true';
}
