// @ts-check
/** Catalogue: GET /products a page at a time; each row looks its product up. */
import { formatPrice } from '../../lib/format.js';
import { messageFor } from '../../lib/messages.js';
import { pageRequest, pageView } from '../../lib/catalogue.js';
import { el, say, scope } from '../dom.js';

/**
 * @param {HTMLElement} root `#catalogue-panel` (CataloguePanel.astro)
 * @param {import('../context.js').Context} ctx
 */
export function mount(root, ctx) {
  const $ = scope(root);
  const view = { page: 0, size: 10 };

  /** @returns {Promise<void>} */
  async function load() {
    const { page, size } = view;
    const errorBox = $.get('catalogue-error');
    const { limit, offset } = pageRequest(page, size);
    try {
      const { data } = await ctx.api.listProducts(limit, offset);
      const shown = pageView(Array.isArray(data) ? data : [], page, size);
      if (shown.items.length === 0 && page > 0) {
        view.page = page - 1;
        return load();
      }
      say(errorBox, '');
      $.get('catalogue-rows').replaceChildren(...shown.items.map(row));
      $.setText('catalogue-summary', shown.summary);
      $.setText('page-label', `Page ${page + 1}`);
      $.button('page-prev').disabled = !shown.hasPrev;
      $.button('page-next').disabled = !shown.hasNext;
    } catch (e) {
      say(errorBox, `Could not load the catalogue: ${messageFor(e)}`);
    }
  }

  /** @param {any} p */
  function row(p) {
    return el(
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
          onclick: () => ctx.events.emit('lookup', { id: String(p.id), reveal: true }),
        }),
      ),
    );
  }

  $.get('page-prev').addEventListener('click', () => {
    view.page = Math.max(0, view.page - 1);
    void load();
  });
  $.get('page-next').addEventListener('click', () => {
    view.page += 1;
    void load();
  });
  $.get('page-size').addEventListener('change', (ev) => {
    view.size = Number(/** @type {HTMLSelectElement} */ (ev.target).value) || 10;
    view.page = 0;
    void load();
  });
  $.get('catalogue-refresh').addEventListener('click', () => void load());
  ctx.events.on('products-changed', () => void load());
  void load();
}
