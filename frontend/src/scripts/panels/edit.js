// @ts-check
/**
 * Edit and watch invalidation: load, save (PUT or PATCH), create, delete, with a log of
 * read → entry present → write → entry gone → fresh database read → cached again.
 * Shown only when /openapi.json lists writes. Its token field is the page's admin token.
 */
import { ApiError, featuresFromOpenApi, isMissingEndpoint, parseProductId } from '../../lib/api.js';
import { clockTime, formatMs, formatPrice, formatTtl, sourceLabel } from '../../lib/format.js';
import { messageFor } from '../../lib/messages.js';
import { formValues, validateProduct } from '../../lib/product-form.js';
import { readEntry } from '../../lib/ttl.js';
import { el, say, scope, setBusy } from '../dom.js';

const LOG_COLOURS = { info: 'text-slate-300', ok: 'text-emerald-300', warn: 'text-amber-300', error: 'text-red-300' };

/**
 * The admin token, kept only in the edit form's password field (never stored), and a way
 * to send the user there after a 401. Given to every panel through the context.
 * @param {HTMLElement} root `#edit-panel`
 */
export function credentials(root) {
  const field = scope(root).input('edit-token');
  return { token: () => field.value, askForToken: () => field.focus() };
}

/**
 * @param {HTMLElement} root `#edit-panel` (EditPanel.astro)
 * @param {import('../context.js').Context} ctx
 * @returns {{probed: Promise<boolean>}} resolves once it is known whether the panel shows
 */
export function mount(root, ctx) {
  const $ = scope(root);
  const errorBox = $.get('edit-error');
  /** the form has changes the user typed since it was last filled */
  let formDirty = false;
  /** @type {ReturnType<typeof setTimeout>|null} */
  let deleteArmed = null;

  /** @param {string} text @param {keyof typeof LOG_COLOURS} [tone] */
  function logStep(text, tone = 'info') {
    const log = $.get('edit-log');
    log.append(
      el('li', { class: `flex gap-2 ${LOG_COLOURS[tone]}` }, el('span', { class: 'shrink-0 font-mono text-xs text-slate-500', text: clockTime(new Date()) }), el('span', { text })),
    );
    while (log.children.length > 12) log.firstElementChild?.remove();
  }

  function readForm() {
    const v = (/** @type {string} */ id) => $.input(id).value;
    return { name: v('edit-name'), category: v('edit-category'), price: v('edit-price'), description: v('edit-description') };
  }

  /** @param {Record<string, string>} errors */
  function showFieldErrors(errors) {
    for (const f of ['name', 'category', 'price']) {
      const input = $.get(`edit-${f}`);
      const msg = errors[f] ?? '';
      say($.get(`edit-${f}-error`), msg);
      if (msg) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
  }

  /** @param {any} p */
  function fillForm(p) {
    formDirty = false;
    const v = formValues(p);
    $.input('edit-name').value = v.name;
    $.input('edit-category').value = v.category;
    $.input('edit-price').value = v.price;
    /** @type {HTMLTextAreaElement} */ ($.get('edit-description')).value = v.description;
  }

  function editId() {
    const input = $.input('edit-id');
    const parsed = parseProductId(input.value);
    if (!parsed.ok) {
      input.setAttribute('aria-invalid', 'true');
      say(errorBox, parsed.error);
      return null;
    }
    input.removeAttribute('aria-invalid');
    return parsed.id;
  }

  /** @param {number} id */
  async function describeEntry(id) {
    if (!ctx.features.entries) return;
    try {
      const { data } = await ctx.api.cacheEntry(id);
      const e = readEntry(data, 0);
      if (e.negative) logStep(`Cache entry ${e.key}: remembered as absent for ${formatTtl(e.ttlSeconds)}.`, 'info');
      else logStep(e.cached ? `Cache entry ${e.key}: present (TTL ${formatTtl(e.ttlSeconds)}).` : `Cache entry ${e.key}: gone — invalidated.`, e.cached ? 'warn' : 'ok');
    } catch {
      // the cache entry panel shows errors of its own
    }
  }

  /** @param {number} id @param {string} why */
  async function readBack(id, why) {
    try {
      const a = await ctx.fetchProduct(id);
      const p = a.data;
      logStep(`GET /products/${id} → ${sourceLabel(p)} in ${formatMs(p.fetch_time_ms)}: “${p.name}”, ${formatPrice(p.price)} ${why}`, p.source === 'database' ? 'ok' : 'info');
      ctx.events.emit('product', { id, product: p, roundTripMs: a.roundTripMs });
      return p;
    } catch (e) {
      logStep(`GET /products/${id} → ${messageFor(e)}`, e instanceof ApiError && e.status === 404 ? 'ok' : 'error');
      return null;
    }
  }

  /** @param {unknown} e @param {string} what */
  function writeFailed(e, what) {
    if (isMissingEndpoint(e)) {
      say(errorBox, `This API does not accept ${what} (${e instanceof ApiError ? e.status : ''}).`);
      return;
    }
    say(errorBox, `${what} failed: ${messageFor(e)}`);
    logStep(`${what} failed: ${messageFor(e)}`, 'error');
    if (e instanceof ApiError && e.status === 401) ctx.askForToken();
  }

  /** The form's values when valid; otherwise the fields are marked and null. */
  function validForm() {
    const checked = validateProduct(readForm());
    if (!checked.ok) {
      showFieldErrors(checked.errors);
      say(errorBox, 'Fix the highlighted fields.');
      return null;
    }
    showFieldErrors({});
    say(errorBox, '');
    return checked.value;
  }

  async function loadIntoForm() {
    const id = editId();
    if (id == null) return;
    say(errorBox, '');
    formDirty = false;
    const button = $.get('edit-load');
    setBusy(button, true);
    try {
      const { data } = await ctx.api.getProduct(id);
      // Typing while the product was loading wins over what arrives.
      if (formDirty) return;
      fillForm(data);
      showFieldErrors({});
    } catch (e) {
      say(errorBox, messageFor(e, `product with id ${id}`));
    } finally {
      setBusy(button, false);
    }
  }

  async function save() {
    const id = editId();
    if (id == null) return;
    const value = validForm();
    if (!value) return;
    const button = $.get('edit-save');
    setBusy(button, true);
    try {
      // Warm the cache first so the invalidation is visible.
      await readBack(id, '(before the write: warms the cache)');
      await describeEntry(id);
      const put = ctx.features.writes.put;
      const started = performance.now();
      if (put) await ctx.api.replaceProduct(id, value, ctx.token());
      else await ctx.api.patchProduct(id, value, ctx.token());
      logStep(`${put ? 'PUT' : 'PATCH'} /products/${id} → saved in ${formatMs(performance.now() - started)} (round trip).`, 'ok');
      await describeEntry(id);
      await readBack(id, '(after the write: fresh from PostgreSQL)');
      await readBack(id, '(cached again)');
      ctx.events.emit('cache-changed');
      ctx.events.emit('products-changed');
    } catch (e) {
      writeFailed(e, 'Saving');
    } finally {
      setBusy(button, false);
    }
  }

  async function create() {
    const value = validForm();
    if (!value) return;
    const button = $.get('edit-create');
    setBusy(button, true);
    try {
      const { data, status } = await ctx.api.createProduct(value, ctx.token());
      const id = Number(data?.id);
      logStep(`POST /products → ${status}: created product #${Number.isFinite(id) ? id : '?'}.`, 'ok');
      if (Number.isFinite(id)) {
        $.input('edit-id').value = String(id);
        await readBack(id, '(first read of the new product)');
      }
      ctx.events.emit('products-changed');
    } catch (e) {
      writeFailed(e, 'Creating');
    } finally {
      setBusy(button, false);
    }
  }

  async function remove() {
    const id = editId();
    if (id == null) return;
    const button = $.get('edit-delete');
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
    say(errorBox, '');
    setBusy(button, true);
    try {
      await ctx.api.deleteProduct(id, ctx.token());
      logStep(`DELETE /products/${id} → deleted.`, 'ok');
      await describeEntry(id);
      await readBack(id, '');
      ctx.events.emit('products-changed');
    } catch (e) {
      writeFailed(e, 'Deleting');
    } finally {
      setBusy(button, false);
    }
  }

  async function probe() {
    try {
      const { data } = await ctx.api.openapi();
      const f = featuresFromOpenApi(data);
      ctx.features.writes = { create: f.create, update: f.update, put: f.put, remove: f.remove };
    } catch {
      ctx.features.writes = { create: false, update: false, put: false, remove: false };
    }
    const w = ctx.features.writes;
    const any = w.create || w.update || w.remove;
    root.hidden = !any;
    $.get('edit-save').hidden = !w.update;
    $.get('edit-create').hidden = !w.create;
    $.get('edit-delete').hidden = !w.remove;
    if (any) void loadIntoForm();
    return any;
  }

  const form = $.get('edit-form');
  form.addEventListener('input', (ev) => {
    if (/** @type {HTMLElement} */ (ev.target).id !== 'edit-token') formDirty = true;
  });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (ctx.features.writes.update) void save();
  });
  $.get('edit-load').addEventListener('click', () => void loadIntoForm());
  $.get('edit-create').addEventListener('click', () => void create());
  $.get('edit-delete').addEventListener('click', () => void remove());
  // The form follows the lookup, unless the user is editing something.
  ctx.events.on('looked-up', ({ product }) => {
    if (root.hidden || formDirty) return;
    $.input('edit-id').value = String(product.id);
    fillForm(product);
  });
  return { probed: probe() };
}
