// @ts-check
/** Health: overall status, PostgreSQL and Redis, polled while the tab is visible. */
import { clockTime } from '../../lib/format.js';
import { messageFor } from '../../lib/messages.js';
import { say, scope } from '../dom.js';

const HEALTH_INTERVAL_MS = 5000;

const HEALTH_BADGE = {
  healthy: 'badge bg-emerald-500 text-slate-950',
  degraded: 'badge bg-amber-500 text-slate-950',
  unhealthy: 'badge bg-red-600 text-white',
};

const NOTES = {
  healthy: 'Both stores answer.',
  degraded: 'Redis is down: every read goes to PostgreSQL (slower, still correct).',
  unhealthy: 'PostgreSQL is down: only cached products can be served.',
};

/**
 * @param {HTMLElement} root `#health-panel` (HealthPanel.astro)
 * @param {import('../context.js').Context} ctx
 */
export function mount(root, ctx) {
  const $ = scope(root);

  async function refresh() {
    const badge = $.get('health-status');
    const errorBox = $.get('health-error');
    try {
      const { data } = await ctx.api.health();
      const status = String(data?.status ?? 'unknown');
      badge.className = HEALTH_BADGE[/** @type {keyof typeof HEALTH_BADGE} */ (status)] ?? 'badge bg-slate-600 text-white';
      badge.textContent = status;
      badge.dataset.status = status;
      for (const [id, value] of [['health-db', data?.database], ['health-redis', data?.redis]]) {
        const node = $.get(String(id));
        const ok = value === 'connected';
        node.textContent = String(value ?? '—');
        node.className = ok ? 'font-medium text-emerald-300' : 'font-medium text-red-300';
      }
      const extra = [];
      if (typeof data?.redis_breaker === 'string') extra.push(`Redis circuit breaker: ${data.redis_breaker}`);
      if (typeof data?.memory_tier === 'boolean') extra.push(`in-process (L1) tier: ${data.memory_tier ? 'on' : 'off'}`);
      say($.get('health-extra'), extra.join(' · '));
      $.setText(
        'health-note',
        `${NOTES[/** @type {keyof typeof NOTES} */ (status)] ?? ''} ${data?.version ? `API v${data.version}. ` : ''}Checked ${clockTime(new Date())}, every ${HEALTH_INTERVAL_MS / 1000} s.`,
      );
      say(errorBox, '');
    } catch (e) {
      badge.className = 'badge bg-red-600 text-white';
      badge.textContent = 'unreachable';
      badge.dataset.status = 'unreachable';
      say(errorBox, messageFor(e));
    }
  }

  ctx.poll({ task: refresh, intervalMs: HEALTH_INTERVAL_MS }).start();
}
