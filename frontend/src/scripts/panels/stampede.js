// @ts-check
/** Stampede: clear the cache, fire N concurrent lookups of one cold product, count the cost. */
import { parseProductId } from '../../lib/api.js';
import { formatCount, formatMs } from '../../lib/format.js';
import { messageFor } from '../../lib/messages.js';
import { clampInt, describeStampede, runStampede } from '../../lib/runners.js';
import { say, scope, setBusy } from '../dom.js';

/**
 * @param {HTMLElement} root `#stampede-panel` (StampedePanel.astro)
 * @param {import('../context.js').Context} ctx
 */
export function mount(root, ctx) {
  const $ = scope(root);
  $.get('stampede-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const errorBox = $.get('stampede-error');
    const idInput = $.input('stampede-id');
    const nInput = $.input('stampede-n');
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
    const button = $.get('stampede-run');
    setBusy(button, true);
    button.textContent = `Firing ${n} requests…`;
    try {
      const r = await runStampede({ api: ctx.api, id: parsed.id, n, token: ctx.token() });
      $.setText('stampede-requests', formatCount(r.requests));
      $.setText('stampede-db-queries', r.dbQueries == null ? 'n/a' : formatCount(r.dbQueries));
      $.get('stampede-db-queries').dataset.value = r.dbQueries == null ? '' : String(r.dbQueries);
      $.setText('stampede-from-db', formatCount(r.fromDatabase));
      $.setText('stampede-from-cache', formatCount(r.fromCache));
      $.setText('stampede-coalesced', r.coalesced == null ? 'n/a' : formatCount(r.coalesced));
      $.setText('stampede-elapsed', formatMs(r.elapsedMs));
      $.setText('stampede-summary', describeStampede(r));
      $.get('stampede-result').hidden = false;
      if (r.failed > 0) say(errorBox, `${r.failed} of ${r.requests} requests failed: ${r.firstError ?? 'unknown error'}`);
      ctx.events.emit('cache-changed');
    } catch (e) {
      say(errorBox, `The stampede could not run: ${messageFor(e)}`);
    } finally {
      setBusy(button, false);
      button.textContent = 'Run stampede';
    }
  });
}
