// @ts-check
/**
 * Wires the page to the API. The logic lives in ../lib (tested in Node); this file only
 * reads inputs, calls it, and writes text nodes and attributes (never HTML).
 */
import { ApiError, PRODUCT_NOT_FOUND, createApi, featuresFromOpenApi, isMissingEndpoint, parseProductId } from '../lib/api.js';
import { clockTime, formatCount, formatFactor, formatMs, formatPercent, formatPrice, formatTtl, sourceLabel } from '../lib/format.js';
import { HitRateSeries, normaliseStats, statTiles, tierRows } from '../lib/stats.js';
import { KIND_COLOURS, KIND_LABELS, Timeline, classify, percentLines, speedup, timelineBars } from '../lib/timeline.js';
import { clampInt, describeStampede, runLoadTest, runStampede } from '../lib/runners.js';
import { createPoller } from '../lib/poller.js';
import { pageRequest, pageView } from '../lib/catalogue.js';
import { readEntry, remainingSeconds, ttlPercent } from '../lib/ttl.js';
import { formValues, validateProduct } from '../lib/product-form.js';
import { jaegerTraceUrl, parseServerTiming, traceIdFrom } from '../lib/timing.js';
import { byId, el, say, setText, svg } from './dom.js';

const STATS_INTERVAL_MS = 2000;
const HEALTH_INTERVAL_MS = 5000;
const TIMELINE_SLOTS = 40;

const api = createApi({ base: import.meta.env.PUBLIC_API_BASE ?? '' });
const timeline = new Timeline(TIMELINE_SLOTS);
const hitRates = new HitRateSeries(90);

/** What the page knows about the API and the user's last lookup. */
const state = {
  /** @type {number|null} */
  currentId: null,
  /** true / false once probed; null before */
  /** @type {boolean|null} */
  entriesSupported: null,
  writes: { create: false, update: false, put: false, remove: false },
  /** @type {ReturnType<typeof readEntry>|null} */
  entry: null,
  /** largest TTL seen per key, for the bar */
  /** @type {Map<string, number>} */
  fullTtl: new Map(),
  catalogue: { page: 0, size: 10 },
  lookupSeq: 0,
  /** the edit form has changes the user typed since it was last filled */
  formDirty: false,
  userPaused: false,
};

/**
 * A message for a person from any error.
 * @param {unknown} e
 * @param {string} [what] e.g. "product 42"
 */
function messageFor(e, what) {
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

/** @param {HTMLButtonElement|HTMLElement} button @param {boolean} busy */
function setBusy(button, busy) {
  const b = /** @type {HTMLButtonElement} */ (button);
  b.disabled = busy;
  b.setAttribute('aria-busy', String(busy));
}

// ---------------------------------------------------------------- lookup

const BADGE_CLASSES = {
  database: 'badge bg-amber-500 text-slate-950',
  redis: 'badge bg-red-500 text-white',
  memory: 'badge bg-emerald-500 text-slate-950',
  cache: 'badge bg-sky-400 text-slate-950',
  error: 'badge bg-slate-600 text-white',
};

/**
 * Looks up a product as the user asked, shows it, and records it in the timeline.
 * @param {string} raw what was typed
 * @returns {Promise<any|null>} the product, or null on error
 */
async function lookup(raw) {
  const input = /** @type {HTMLInputElement} */ (byId('product-id'));
  const errorBox = byId('lookup-error');
  const parsed = parseProductId(raw);
  if (!parsed.ok) {
    input.setAttribute('aria-invalid', 'true');
    say(errorBox, parsed.error);
    return null;
  }
  input.removeAttribute('aria-invalid');
  input.value = String(parsed.id);
  say(errorBox, '');
  say(byId('clear-status'), '');
  const button = byId('lookup-button');
  const seq = ++state.lookupSeq;
  setBusy(button, true);
  try {
    const product = await fetchAndRecord(parsed.id);
    // A slower, older answer must not replace a newer one (quick buttons pressed fast).
    if (seq !== state.lookupSeq) return product.data;
    showProduct(product.data, product.roundTripMs);
    showTiming(product.headers);
    state.currentId = parsed.id;
    followInEditForm(product.data);
    void refreshEntry();
    return product.data;
  } catch (e) {
    if (seq !== state.lookupSeq) return null;
    input.setAttribute('aria-invalid', 'true');
    say(errorBox, messageFor(e, `product with id ${parsed.id}`));
    byId('lookup-result').hidden = true;
    byId('lookup-empty').hidden = false;
    return null;
  } finally {
    setBusy(button, false);
  }
}

/**
 * GET /products/{id}, added to the timeline whatever happens.
 * @param {number} id
 */
async function fetchAndRecord(id) {
  try {
    const answer = await api.getProduct(id);
    timeline.add({
      label: `#${id}`,
      ok: true,
      source: answer.data.source,
      tier: answer.data.cache_tier ?? null,
      serverMs: typeof answer.data.fetch_time_ms === 'number' ? answer.data.fetch_time_ms : null,
      roundTripMs: answer.roundTripMs,
    });
    return answer;
  } catch (e) {
    timeline.add({ label: `#${id}`, ok: false, roundTripMs: null });
    throw e;
  } finally {
    renderTimeline();
  }
}

/**
 * Server-Timing phases and a Jaeger link to the request's trace, when the API sends them.
 * @param {Headers} headers
 */
function showTiming(headers) {
  const box = byId('lookup-timing');
  const timings = parseServerTiming(headers.get('server-timing'));
  const parts = timings.map((m) =>
    el('span', { class: 'font-mono', 'data-timing': m.name, title: m.desc || m.name, text: `${m.name} ${m.dur == null ? '' : formatMs(m.dur)}`.trim() }),
  );
  const traceId = traceIdFrom((name) => headers.get(name));
  if (traceId) {
    const href = jaegerTraceUrl(document.body.dataset.jaegerUrl, traceId);
    parts.push(
      href
        ? el('a', { href, target: '_blank', rel: 'noopener noreferrer', class: 'font-mono text-sky-300 underline hover:text-sky-200', id: 'lookup-trace', text: `trace ${traceId.slice(0, 12)}… in Jaeger` })
        : el('span', { class: 'font-mono', id: 'lookup-trace', text: `trace ${traceId}` }),
    );
  }
  box.replaceChildren(...(timings.length ? [el('span', { class: 'text-slate-500', text: 'server timing' })] : []), ...parts);
  box.hidden = parts.length === 0;
}

/** @param {any} p @param {number} roundTripMs */
function showProduct(p, roundTripMs) {
  const kind = classify({ ok: true, source: p.source, tier: p.cache_tier });
  const badge = byId('source-badge');
  badge.className = BADGE_CLASSES[kind];
  badge.textContent = sourceLabel(p);
  badge.dataset.source = String(p.source ?? '');
  badge.dataset.tier = String(p.cache_tier ?? '');
  setText('fetch-time', formatMs(p.fetch_time_ms));
  setText('round-trip', formatMs(roundTripMs));
  setText('product-name', String(p.name ?? ''));
  setText('product-id-out', String(p.id ?? ''));
  setText('product-price', formatPrice(p.price));
  setText('product-category', String(p.category ?? ''));
  setText('product-description', String(p.description ?? ''));
  const updated = byId('product-updated');
  updated.textContent = p.updated_at ? new Date(p.updated_at).toLocaleString() : '—';
  if (p.updated_at) updated.setAttribute('datetime', String(p.updated_at));
  byId('lookup-result').hidden = false;
  byId('lookup-empty').hidden = true;
}

async function clearCache() {
  const button = byId('clear-button');
  const status = byId('clear-status');
  const errorBox = byId('lookup-error');
  setBusy(button, true);
  say(status, '');
  try {
    const { data } = await api.clearCache(token());
    const n = typeof data?.cleared_keys === 'number' ? data.cleared_keys : null;
    say(errorBox, '');
    say(status, `Cache cleared: ${n == null ? 'keys' : `${n} ${n === 1 ? 'key' : 'keys'}`} removed at ${clockTime(new Date())}. The next lookup comes from the database.`);
    void refreshEntry();
  } catch (e) {
    say(errorBox, `Could not clear the cache: ${messageFor(e)}`);
    if (e instanceof ApiError && e.status === 401) byId('edit-token').focus();
  } finally {
    setBusy(button, false);
  }
}

function wireLookup() {
  const form = /** @type {HTMLFormElement} */ (byId('lookup-form'));
  const input = /** @type {HTMLInputElement} */ (byId('product-id'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void lookup(input.value);
  });
  for (const b of document.querySelectorAll('[data-quick]')) {
    b.addEventListener('click', () => {
      const id = /** @type {HTMLElement} */ (b).dataset.quick ?? '';
      input.value = id;
      void lookup(id);
    });
  }
  byId('clear-button').addEventListener('click', () => void clearCache());
}

// ---------------------------------------------------------------- timeline

function renderTimeline() {
  const chart = byId('timeline-chart');
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
  const factor = byId('speedup-factor');
  factor.textContent = formatFactor(s.factor);
  factor.dataset.factor = s.factor == null ? '' : s.factor.toFixed(3);
  if (s.factor == null) {
    setText(
      'speedup-detail',
      s.dbCount === 0 && s.cacheCount === 0
        ? 'Look up a product twice to compare database and cache.'
        : s.dbCount === 0
          ? 'Only cache answers so far: clear the cache and look up again to see a database read.'
          : 'Only database answers so far: look up the same product again to see a cache hit.',
    );
  } else {
    setText(
      'speedup-detail',
      `Median server time: database ${formatMs(s.dbMedian)} (${s.dbCount}) vs cache ${formatMs(s.cacheMedian)} (${s.cacheCount}).`,
    );
  }
}

/**
 * The drawn width of a chart in CSS pixels (fallback before layout).
 * @param {Element} chart
 * @param {number} fallback
 */
function chartWidth(chart, fallback) {
  const w = Math.round(chart.getBoundingClientRect().width);
  return w >= 200 ? w : fallback;
}

/** @param {number} v */
function tickLabel(v) {
  if (v >= 1000) return `${v / 1000} s`;
  if (v >= 1) return `${v} ms`;
  return `${Number(v.toPrecision(1))} ms`;
}

// ---------------------------------------------------------------- stats and hit rate

async function refreshStats() {
  const errorBox = byId('stats-error');
  try {
    const { data } = await api.stats();
    const s = normaliseStats(data);
    say(errorBox, s.redisConnected ? '' : 'Redis is disconnected: products are served from PostgreSQL, and Redis counters are unavailable.');
    renderTiles(s);
    hitRates.push(s, Date.now());
    renderHitRate();
    setText('stats-updated', `· updated ${clockTime(new Date())}`);
  } catch (e) {
    say(errorBox, `Statistics unavailable: ${messageFor(e)}`);
  }
  if (state.currentId != null && state.entriesSupported) void refreshEntry();
}

/** @param {import('../lib/stats.js').Stats} s */
function renderTiles(s) {
  const container = byId('stats-tiles');
  const tiles = statTiles(s);
  container.replaceChildren(
    ...tiles.map((t) =>
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
  const table = byId('tier-table');
  table.hidden = rows.length === 0;
  byId('tier-rows').replaceChildren(
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

function renderHitRate() {
  const chart = byId('hitrate-chart');
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
  setText('hitrate-now', last && last.cumulative != null ? formatPercent(last.cumulative) : '—');
}

const STATE_TEXT = {
  running: `Live: refreshes every ${STATS_INTERVAL_MS / 1000} s.`,
  paused: 'Paused while this tab is hidden.',
  stopped: 'Paused. Press Resume or Refresh now.',
};

function wireStats() {
  const label = byId('stats-state');
  const poller = createPoller({
    task: refreshStats,
    intervalMs: STATS_INTERVAL_MS,
    isHidden: () => document.hidden,
    onState: (s) => {
      label.dataset.state = s;
      label.textContent = STATE_TEXT[s];
    },
  });
  const health = createPoller({ task: refreshHealth, intervalMs: HEALTH_INTERVAL_MS, isHidden: () => document.hidden });
  document.addEventListener('visibilitychange', () => {
    poller.visibilityChanged();
    health.visibilityChanged();
  });
  const toggle = byId('stats-toggle');
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
  byId('stats-refresh').addEventListener('click', () => {
    if (poller.running) void poller.refreshNow();
    else void refreshStats();
  });
  poller.start();
  health.start();
}

// ---------------------------------------------------------------- health

const HEALTH_BADGE = {
  healthy: 'badge bg-emerald-500 text-slate-950',
  degraded: 'badge bg-amber-500 text-slate-950',
  unhealthy: 'badge bg-red-600 text-white',
};

async function refreshHealth() {
  const badge = byId('health-status');
  const errorBox = byId('health-error');
  try {
    const { data } = await api.health();
    const status = String(data?.status ?? 'unknown');
    badge.className = HEALTH_BADGE[/** @type {keyof typeof HEALTH_BADGE} */ (status)] ?? 'badge bg-slate-600 text-white';
    badge.textContent = status;
    badge.dataset.status = status;
    for (const [id, value] of [['health-db', data?.database], ['health-redis', data?.redis]]) {
      const node = byId(String(id));
      const ok = value === 'connected';
      node.textContent = String(value ?? '—');
      node.className = ok ? 'font-medium text-emerald-300' : 'font-medium text-red-300';
    }
    const extra = [];
    if (typeof data?.redis_breaker === 'string') extra.push(`Redis circuit breaker: ${data.redis_breaker}`);
    if (typeof data?.memory_tier === 'boolean') extra.push(`in-process (L1) tier: ${data.memory_tier ? 'on' : 'off'}`);
    say(byId('health-extra'), extra.join(' · '));
    const notes = {
      healthy: 'Both stores answer.',
      degraded: 'Redis is down: every read goes to PostgreSQL (slower, still correct).',
      unhealthy: 'PostgreSQL is down: only cached products can be served.',
    };
    setText(
      'health-note',
      `${notes[/** @type {keyof typeof notes} */ (status)] ?? ''} ${data?.version ? `API v${data.version}. ` : ''}Checked ${clockTime(new Date())}, every ${HEALTH_INTERVAL_MS / 1000} s.`,
    );
    say(errorBox, '');
  } catch (e) {
    badge.className = 'badge bg-red-600 text-white';
    badge.textContent = 'unreachable';
    badge.dataset.status = 'unreachable';
    say(errorBox, messageFor(e));
  }
}

// ---------------------------------------------------------------- cache entry TTL

async function probeEntries() {
  try {
    await api.cacheEntry(1);
    state.entriesSupported = true;
  } catch (e) {
    // A product that is not there still proves the endpoint exists.
    state.entriesSupported = !isMissingEndpoint(e) && e instanceof ApiError && e.status !== 0;
  }
  byId('ttl-panel').hidden = !state.entriesSupported;
}

async function refreshEntry() {
  if (!state.entriesSupported || state.currentId == null) return;
  const id = state.currentId;
  const errorBox = byId('ttl-error');
  try {
    const { data } = await api.cacheEntry(id);
    if (id !== state.currentId) return;
    const entry = readEntry(data, performance.now());
    state.entry = entry;
    if (entry.cached && entry.ttlSeconds != null) {
      const seen = state.fullTtl.get(entry.key) ?? 0;
      // A fresh fill (TTL jumps up) resets the bar's reference.
      state.fullTtl.set(entry.key, entry.ttlSeconds > seen || seen === 0 ? entry.ttlSeconds : seen);
    }
    say(errorBox, '');
    renderEntry();
  } catch (e) {
    if (isMissingEndpoint(e)) {
      state.entriesSupported = false;
      byId('ttl-panel').hidden = true;
      return;
    }
    say(errorBox, messageFor(e, `cache entry for product ${id}`));
  }
}

function renderEntry() {
  const entry = state.entry;
  byId('ttl-empty').hidden = entry != null;
  byId('ttl-body').hidden = entry == null;
  if (!entry) return;
  setText('ttl-key', entry.key || `product ${state.currentId}`);
  const left = remainingSeconds(entry, performance.now());
  const stateNode = byId('ttl-state');
  stateNode.dataset.cached = String(entry.cached);
  if (entry.negative) {
    stateNode.textContent = 'remembered as absent (negative entry)';
    stateNode.className = 'text-sm font-medium text-sky-300';
    setText('ttl-value', formatTtl(left));
  } else if (!entry.cached) {
    stateNode.textContent = 'not cached';
    stateNode.className = 'text-sm font-medium text-amber-300';
    setText('ttl-value', '—');
  } else {
    stateNode.textContent = entry.ttlSeconds == null ? 'cached, no expiry' : 'cached, expires in';
    stateNode.className = 'text-sm font-medium text-emerald-300';
    setText('ttl-value', formatTtl(left));
  }
  byId('ttl-value').dataset.seconds = left == null ? '' : String(left);
  byId('ttl-bar').style.width = `${ttlPercent(left, state.fullTtl.get(entry.key) ?? null)}%`;
}

// ---------------------------------------------------------------- stampede

function wireStampede() {
  const form = byId('stampede-form');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const errorBox = byId('stampede-error');
    const idInput = /** @type {HTMLInputElement} */ (byId('stampede-id'));
    const nInput = /** @type {HTMLInputElement} */ (byId('stampede-n'));
    const parsed = parseProductId(idInput.value);
    if (!parsed.ok) {
      idInput.setAttribute('aria-invalid', 'true');
      say(errorBox, parsed.error);
      return;
    }
    idInput.removeAttribute('aria-invalid');
    const n = clampInt(nInput.value, 2, 200, 50);
    nInput.value = String(n);
    say(errorBox, '');
    const button = byId('stampede-run');
    setBusy(button, true);
    button.textContent = `Firing ${n} requests…`;
    try {
      const r = await runStampede({ api, id: parsed.id, n, token: token() });
      setText('stampede-requests', formatCount(r.requests));
      setText('stampede-db-queries', r.dbQueries == null ? 'n/a' : formatCount(r.dbQueries));
      byId('stampede-db-queries').dataset.value = r.dbQueries == null ? '' : String(r.dbQueries);
      setText('stampede-from-db', formatCount(r.fromDatabase));
      setText('stampede-from-cache', formatCount(r.fromCache));
      setText('stampede-coalesced', r.coalesced == null ? 'n/a' : formatCount(r.coalesced));
      setText('stampede-elapsed', formatMs(r.elapsedMs));
      setText('stampede-summary', describeStampede(r));
      byId('stampede-result').hidden = false;
      if (r.failed > 0) say(errorBox, `${r.failed} of ${r.requests} requests failed: ${r.firstError ?? 'unknown error'}`);
      void refreshEntry();
    } catch (e) {
      say(errorBox, `The stampede could not run: ${messageFor(e)}`);
    } finally {
      setBusy(button, false);
      button.textContent = 'Run stampede';
    }
  });
}

// ---------------------------------------------------------------- load test

function wireLoadTest() {
  const form = byId('load-form');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const errorBox = byId('load-error');
    const num = (/** @type {string} */ id, /** @type {number} */ min, /** @type {number} */ max, /** @type {number} */ dflt) => {
      const input = /** @type {HTMLInputElement} */ (byId(id));
      const v = clampInt(input.value, min, max, dflt);
      input.value = String(v);
      return v;
    };
    const n = num('load-n', 1, 2000, 60);
    const distinct = num('load-distinct', 1, 100, 15);
    const concurrency = num('load-concurrency', 1, 32, 4);
    const clearFirst = /** @type {HTMLInputElement} */ (byId('load-clear')).checked;
    const progress = byId('load-progress');
    const progressBar = byId('load-progress-bar');
    const showProgress = (/** @type {number} */ done) => {
      progress.setAttribute('aria-valuemax', String(n));
      progress.setAttribute('aria-valuenow', String(done));
      progressBar.style.width = `${((done / n) * 100).toFixed(1)}%`;
    };
    showProgress(0);
    say(errorBox, '');
    const button = byId('load-run');
    setBusy(button, true);
    button.textContent = 'Running…';
    try {
      const r = await runLoadTest({
        token: token(),
        api,
        n,
        distinct,
        concurrency,
        clearFirst,
        onShot: (_shot, done) => showProgress(done),
      });
      renderLoad(r);
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

/** @param {Awaited<ReturnType<typeof runLoadTest>>} r */
function renderLoad(r) {
  const groups = r.summary;
  const db = groups.find((g) => g.kind === 'database');
  const cacheGroups = groups.filter((g) => g.kind === 'redis' || g.kind === 'memory' || g.kind === 'cache');
  const cacheCount = cacheGroups.reduce((a, g) => a + g.count, 0);
  const cacheMean = cacheCount ? cacheGroups.reduce((a, g) => a + (g.meanMs ?? 0) * g.count, 0) / cacheCount : null;
  const factor = db?.meanMs != null && cacheMean != null ? db.meanMs / Math.max(cacheMean, 0.001) : null;
  setText(
    'load-summary',
    `${r.shots.length} requests in ${formatMs(r.elapsedMs)} (${formatCount((r.shots.length / Math.max(r.elapsedMs, 1)) * 1000)} req/s). ` +
      (factor != null ? `Cache answers were ${formatFactor(factor)} faster than database reads (mean server time).` : 'Run with "Clear cache first" to compare database and cache.'),
  );
  byId('load-bars').replaceChildren(
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
  byId('load-result').hidden = false;
}

// ---------------------------------------------------------------- catalogue

async function loadCatalogue() {
  const { page, size } = state.catalogue;
  const errorBox = byId('catalogue-error');
  const { limit, offset } = pageRequest(page, size);
  try {
    const { data } = await api.listProducts(limit, offset);
    const view = pageView(Array.isArray(data) ? data : [], page, size);
    if (view.items.length === 0 && page > 0) {
      state.catalogue.page = page - 1;
      return loadCatalogue();
    }
    say(errorBox, '');
    byId('catalogue-rows').replaceChildren(
      ...view.items.map((p) =>
        el(
          'tr',
          { 'data-id': String(p.id) },
          el('td', { class: 'py-2 pr-3 font-mono text-slate-400', text: String(p.id) }),
          el('td', { class: 'py-2 pr-3 text-slate-100', text: String(p.name ?? '') }),
          el('td', { class: 'hidden py-2 pr-3 text-slate-400 sm:table-cell', text: String(p.category ?? '') }),
          el('td', { class: 'py-2 pr-3 text-right font-mono text-emerald-300', text: formatPrice(p.price) }),
          el(
            'td',
            { class: 'py-1.5 text-right' },
            el('button', {
              type: 'button',
              class: 'btn btn-secondary whitespace-nowrap px-2 py-1 text-xs',
              'aria-label': `Look up ${String(p.name ?? `product ${p.id}`)}`,
              text: 'Look up',
              onclick: () => {
                const input = /** @type {HTMLInputElement} */ (byId('product-id'));
                input.value = String(p.id);
                void lookup(String(p.id)).then(() => byId('lookup-panel').scrollIntoView({ behavior: 'smooth', block: 'nearest' }));
              },
            }),
          ),
        ),
      ),
    );
    setText('catalogue-summary', view.summary);
    setText('page-label', `Page ${page + 1}`);
    /** @type {HTMLButtonElement} */ (byId('page-prev')).disabled = !view.hasPrev;
    /** @type {HTMLButtonElement} */ (byId('page-next')).disabled = !view.hasNext;
  } catch (e) {
    say(errorBox, `Could not load the catalogue: ${messageFor(e)}`);
  }
}

function wireCatalogue() {
  byId('page-prev').addEventListener('click', () => {
    state.catalogue.page = Math.max(0, state.catalogue.page - 1);
    void loadCatalogue();
  });
  byId('page-next').addEventListener('click', () => {
    state.catalogue.page += 1;
    void loadCatalogue();
  });
  byId('page-size').addEventListener('change', (ev) => {
    state.catalogue.size = Number(/** @type {HTMLSelectElement} */ (ev.target).value) || 10;
    state.catalogue.page = 0;
    void loadCatalogue();
  });
  byId('catalogue-refresh').addEventListener('click', () => void loadCatalogue());
  void loadCatalogue();
}

// ---------------------------------------------------------------- edit form

/** @param {string} text @param {'info'|'ok'|'warn'|'error'} [tone] */
function logStep(text, tone = 'info') {
  const colours = { info: 'text-slate-300', ok: 'text-emerald-300', warn: 'text-amber-300', error: 'text-red-300' };
  const log = byId('edit-log');
  log.append(
    el('li', { class: `flex gap-2 ${colours[tone]}` }, el('span', { class: 'shrink-0 font-mono text-xs text-slate-500', text: clockTime(new Date()) }), el('span', { text })),
  );
  while (log.children.length > 12) log.firstElementChild?.remove();
}

function readForm() {
  const v = (/** @type {string} */ id) => /** @type {HTMLInputElement} */ (byId(id)).value;
  return { name: v('edit-name'), category: v('edit-category'), price: v('edit-price'), description: v('edit-description') };
}

/** @param {Record<string, string>} errors */
function showFieldErrors(errors) {
  for (const f of ['name', 'category', 'price']) {
    const input = byId(`edit-${f}`);
    const msg = errors[f] ?? '';
    say(byId(`edit-${f}-error`), msg);
    if (msg) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }
}

/**
 * The edit form follows the lookup, unless the user is editing something.
 * @param {any} p
 */
function followInEditForm(p) {
  if (byId('edit-panel').hidden || state.formDirty) return;
  /** @type {HTMLInputElement} */ (byId('edit-id')).value = String(p.id);
  fillForm(p);
}

/** @param {any} p */
function fillForm(p) {
  state.formDirty = false;
  const v = formValues(p);
  /** @type {HTMLInputElement} */ (byId('edit-name')).value = v.name;
  /** @type {HTMLInputElement} */ (byId('edit-category')).value = v.category;
  /** @type {HTMLInputElement} */ (byId('edit-price')).value = v.price;
  /** @type {HTMLTextAreaElement} */ (byId('edit-description')).value = v.description;
}

function editId() {
  const input = /** @type {HTMLInputElement} */ (byId('edit-id'));
  const parsed = parseProductId(input.value);
  if (!parsed.ok) {
    input.setAttribute('aria-invalid', 'true');
    say(byId('edit-error'), parsed.error);
    return null;
  }
  input.removeAttribute('aria-invalid');
  return parsed.id;
}

/** @param {number} id */
async function describeEntry(id) {
  if (!state.entriesSupported) return;
  try {
    const { data } = await api.cacheEntry(id);
    const e = readEntry(data, 0);
    if (e.negative) logStep(`Cache entry ${e.key}: remembered as absent for ${formatTtl(e.ttlSeconds)}.`, 'info');
    else logStep(e.cached ? `Cache entry ${e.key}: present (TTL ${formatTtl(e.ttlSeconds)}).` : `Cache entry ${e.key}: gone — invalidated.`, e.cached ? 'warn' : 'ok');
  } catch {
    // the TTL panel shows errors of its own
  }
}

/** @param {number} id @param {string} why */
async function readBack(id, why) {
  try {
    const a = await fetchAndRecord(id);
    const p = a.data;
    logStep(`GET /products/${id} → ${sourceLabel(p)} in ${formatMs(p.fetch_time_ms)}: “${p.name}”, ${formatPrice(p.price)} ${why}`, p.source === 'database' ? 'ok' : 'info');
    if (state.currentId === id) showProduct(p, a.roundTripMs);
    return p;
  } catch (e) {
    logStep(`GET /products/${id} → ${messageFor(e)}`, e instanceof ApiError && e.status === 404 ? 'ok' : 'error');
    return null;
  }
}

/** @param {unknown} e @param {string} what */
function writeFailed(e, what) {
  const errorBox = byId('edit-error');
  if (isMissingEndpoint(e)) {
    say(errorBox, `This API does not accept ${what} (${e instanceof ApiError ? e.status : ''}).`);
    return;
  }
  say(errorBox, `${what} failed: ${messageFor(e)}`);
  logStep(`${what} failed: ${messageFor(e)}`, 'error');
  if (e instanceof ApiError && e.status === 401) byId('edit-token').focus();
}

function token() {
  return /** @type {HTMLInputElement} */ (byId('edit-token')).value;
}

async function loadIntoForm() {
  const id = editId();
  if (id == null) return;
  say(byId('edit-error'), '');
  state.formDirty = false;
  const button = byId('edit-load');
  setBusy(button, true);
  try {
    const { data } = await api.getProduct(id);
    // Typing while the product was loading wins over what arrives.
    if (state.formDirty) return;
    fillForm(data);
    showFieldErrors({});
  } catch (e) {
    say(byId('edit-error'), messageFor(e, `product with id ${id}`));
  } finally {
    setBusy(button, false);
  }
}

async function save() {
  const id = editId();
  if (id == null) return;
  const checked = validateProduct(readForm());
  if (!checked.ok) {
    showFieldErrors(checked.errors);
    say(byId('edit-error'), 'Fix the highlighted fields.');
    return;
  }
  showFieldErrors({});
  say(byId('edit-error'), '');
  const button = byId('edit-save');
  setBusy(button, true);
  try {
    // Warm the cache first so the invalidation is visible.
    await readBack(id, '(before the write: warms the cache)');
    await describeEntry(id);
    const method = state.writes.put ? 'PUT' : 'PATCH';
    const started = performance.now();
    if (state.writes.put) await api.replaceProduct(id, checked.value, token());
    else await api.patchProduct(id, checked.value, token());
    logStep(`${method} /products/${id} → saved in ${formatMs(performance.now() - started)} (round trip).`, 'ok');
    await describeEntry(id);
    await readBack(id, '(after the write: fresh from PostgreSQL)');
    await readBack(id, '(cached again)');
    void refreshEntry();
    void loadCatalogue();
  } catch (e) {
    writeFailed(e, 'Saving');
  } finally {
    setBusy(button, false);
  }
}

async function create() {
  const checked = validateProduct(readForm());
  if (!checked.ok) {
    showFieldErrors(checked.errors);
    say(byId('edit-error'), 'Fix the highlighted fields.');
    return;
  }
  showFieldErrors({});
  say(byId('edit-error'), '');
  const button = byId('edit-create');
  setBusy(button, true);
  try {
    const { data, status } = await api.createProduct(checked.value, token());
    const id = Number(data?.id);
    logStep(`POST /products → ${status}: created product #${Number.isFinite(id) ? id : '?'}.`, 'ok');
    if (Number.isFinite(id)) {
      /** @type {HTMLInputElement} */ (byId('edit-id')).value = String(id);
      await readBack(id, '(first read of the new product)');
    }
    void loadCatalogue();
  } catch (e) {
    writeFailed(e, 'Creating');
  } finally {
    setBusy(button, false);
  }
}

/** @type {ReturnType<typeof setTimeout>|null} */
let deleteArmed = null;

async function remove() {
  const id = editId();
  if (id == null) return;
  const button = byId('edit-delete');
  if (deleteArmed == null || button.dataset.armedFor !== String(id)) {
    // Two steps instead of confirm(): the first press arms the button for 5 s.
    button.dataset.armedFor = String(id);
    button.textContent = `Confirm delete #${id}`;
    if (deleteArmed) clearTimeout(deleteArmed);
    deleteArmed = setTimeout(() => {
      deleteArmed = null;
      button.textContent = 'Delete';
      delete button.dataset.armedFor;
    }, 5000);
    return;
  }
  clearTimeout(deleteArmed);
  deleteArmed = null;
  button.textContent = 'Delete';
  delete button.dataset.armedFor;
  say(byId('edit-error'), '');
  setBusy(button, true);
  try {
    await api.deleteProduct(id, token());
    logStep(`DELETE /products/${id} → deleted.`, 'ok');
    await describeEntry(id);
    await readBack(id, '');
    void loadCatalogue();
  } catch (e) {
    writeFailed(e, 'Deleting');
  } finally {
    setBusy(button, false);
  }
}

async function probeWrites() {
  try {
    const { data } = await api.openapi();
    const f = featuresFromOpenApi(data);
    state.writes = { create: f.create, update: f.update, put: f.put, remove: f.remove };
  } catch {
    state.writes = { create: false, update: false, put: false, remove: false };
  }
  const any = state.writes.create || state.writes.update || state.writes.remove;
  byId('edit-panel').hidden = !any;
  // Without the edit form the catalogue takes the whole row.
  byId('catalogue-panel').classList.toggle('lg:col-span-3', !any);
  byId('catalogue-panel').classList.toggle('lg:col-span-2', any);
  byId('edit-save').hidden = !state.writes.update;
  byId('edit-create').hidden = !state.writes.create;
  byId('edit-delete').hidden = !state.writes.remove;
  if (any) void loadIntoForm();
}

function wireEdit() {
  byId('edit-form').addEventListener('input', (ev) => {
    if (/** @type {HTMLElement} */ (ev.target).id !== 'edit-token') state.formDirty = true;
  });
  byId('edit-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (state.writes.update) void save();
  });
  byId('edit-load').addEventListener('click', () => void loadIntoForm());
  byId('edit-create').addEventListener('click', () => void create());
  byId('edit-delete').addEventListener('click', () => void remove());
}

// ---------------------------------------------------------------- start

export function start() {
  wireLookup();
  wireStats();
  wireStampede();
  wireLoadTest();
  wireCatalogue();
  wireEdit();
  renderTimeline();
  renderHitRate();
  void probeEntries();
  void probeWrites();
  // The TTL counts down between fetches.
  setInterval(() => {
    if (state.entry && !document.hidden) renderEntry();
  }, 1000);
  // Charts are drawn at their real width; redraw when it changes.
  let lastWidth = 0;
  new ResizeObserver(() => {
    const w = Math.round(byId('timeline-chart').getBoundingClientRect().width);
    if (w === lastWidth) return;
    lastWidth = w;
    renderTimeline();
    renderHitRate();
  }).observe(byId('main'));
  document.documentElement.dataset.ready = 'true';
}
