// @ts-check
/** Product lookup: the id field, quick tests, Clear cache, and the answer with its source. */
import { ApiError, parseProductId } from '../../lib/api.js';
import { clockTime, formatMs, formatPrice, sourceLabel } from '../../lib/format.js';
import { messageFor } from '../../lib/messages.js';
import { classify } from '../../lib/timeline.js';
import { jaegerTraceUrl, parseServerTiming, traceIdFrom } from '../../lib/timing.js';
import { el, say, scope, setBusy } from '../dom.js';

const BADGE_CLASSES = {
  database: 'badge bg-amber-500 text-slate-950',
  redis: 'badge bg-red-500 text-white',
  memory: 'badge bg-emerald-500 text-slate-950',
  cache: 'badge bg-sky-400 text-slate-950',
  error: 'badge bg-slate-600 text-white',
};

/**
 * @param {HTMLElement} root `#lookup-panel` (LookupPanel.astro); `data-jaeger-url` links traces
 * @param {import('../context.js').Context} ctx
 */
export function mount(root, ctx) {
  const $ = scope(root);
  const input = $.input('product-id');
  const errorBox = $.get('lookup-error');
  /** the product shown, which later answers for the same id refresh */
  /** @type {number|null} */
  let currentId = null;
  let lookupSeq = 0;

  /**
   * Looks up a product as the user asked and shows it.
   * @param {string} raw what was typed
   */
  async function lookup(raw) {
    const parsed = parseProductId(raw);
    if (!parsed.ok) {
      input.setAttribute('aria-invalid', 'true');
      say(errorBox, parsed.error);
      return;
    }
    input.removeAttribute('aria-invalid');
    input.value = String(parsed.id);
    say(errorBox, '');
    say($.get('clear-status'), '');
    const button = $.get('lookup-button');
    const seq = ++lookupSeq;
    setBusy(button, true);
    try {
      const answer = await ctx.fetchProduct(parsed.id);
      // A slower, older answer must not replace a newer one (quick buttons pressed fast).
      if (seq !== lookupSeq) return;
      showProduct(answer.data, answer.roundTripMs);
      showTiming(answer.headers);
      currentId = parsed.id;
      ctx.events.emit('looked-up', { id: parsed.id, product: answer.data, roundTripMs: answer.roundTripMs });
    } catch (e) {
      if (seq !== lookupSeq) return;
      input.setAttribute('aria-invalid', 'true');
      say(errorBox, messageFor(e, `product with id ${parsed.id}`));
      $.get('lookup-result').hidden = true;
      $.get('lookup-empty').hidden = false;
    } finally {
      setBusy(button, false);
    }
  }

  /**
   * Server-Timing phases and a Jaeger link to the request's trace, when the API sends them.
   * @param {Headers} headers
   */
  function showTiming(headers) {
    const box = $.get('lookup-timing');
    const timings = parseServerTiming(headers.get('server-timing'));
    const parts = timings.map((m) =>
      el('span', { class: 'font-mono', 'data-timing': m.name, title: m.desc || m.name, text: `${m.name} ${m.dur == null ? '' : formatMs(m.dur)}`.trim() }),
    );
    const traceId = traceIdFrom((name) => headers.get(name));
    if (traceId) {
      const href = jaegerTraceUrl(root.dataset.jaegerUrl, traceId);
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
    const badge = $.get('source-badge');
    badge.className = BADGE_CLASSES[kind];
    badge.textContent = sourceLabel(p);
    badge.dataset.source = String(p.source ?? '');
    badge.dataset.tier = String(p.cache_tier ?? '');
    $.setText('fetch-time', formatMs(p.fetch_time_ms));
    $.setText('round-trip', formatMs(roundTripMs));
    $.setText('product-name', String(p.name ?? ''));
    $.setText('product-id-out', String(p.id ?? ''));
    $.setText('product-price', formatPrice(p.price));
    $.setText('product-category', String(p.category ?? ''));
    $.setText('product-description', String(p.description ?? ''));
    const updated = $.get('product-updated');
    updated.textContent = p.updated_at ? new Date(p.updated_at).toLocaleString() : '—';
    if (p.updated_at) updated.setAttribute('datetime', String(p.updated_at));
    $.get('lookup-result').hidden = false;
    $.get('lookup-empty').hidden = true;
  }

  async function clearCache() {
    const button = $.get('clear-button');
    const status = $.get('clear-status');
    setBusy(button, true);
    say(status, '');
    try {
      const { data } = await ctx.api.clearCache(ctx.token());
      const n = typeof data?.cleared_keys === 'number' ? data.cleared_keys : null;
      say(errorBox, '');
      say(status, `Cache cleared: ${n == null ? 'keys' : `${n} ${n === 1 ? 'key' : 'keys'}`} removed at ${clockTime(new Date())}. The next lookup comes from the database.`);
      ctx.events.emit('cache-changed');
    } catch (e) {
      say(errorBox, `Could not clear the cache: ${messageFor(e)}`);
      if (e instanceof ApiError && e.status === 401) ctx.askForToken();
    } finally {
      setBusy(button, false);
    }
  }

  $.get('lookup-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void lookup(input.value);
  });
  for (const b of root.querySelectorAll('[data-quick]')) {
    b.addEventListener('click', () => {
      const id = /** @type {HTMLElement} */ (b).dataset.quick ?? '';
      input.value = id;
      void lookup(id);
    });
  }
  $.get('clear-button').addEventListener('click', () => void clearCache());

  ctx.events.on('lookup', ({ id, reveal }) => {
    input.value = id;
    void lookup(id).then(() => {
      if (reveal) root.scrollIntoView({ behavior: 'smooth', block: 'nearest' });
    });
  });
  ctx.events.on('product', ({ id, product, roundTripMs }) => {
    if (id === currentId) showProduct(product, roundTripMs);
  });
}
