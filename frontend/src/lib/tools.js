// @ts-check
/**
 * The header's links to the admin tools (pgAdmin, Redis Commander, Jaeger).
 *
 * The API does not report which of them run next to it, and the page talks to nothing
 * but the API, so it cannot probe them. Whoever builds the page knows: docker compose
 * and the image's build arguments (used by Tilt, which starts all three) pass their
 * addresses as PUBLIC_*_URL. A tool is linked only when its address was given; the
 * others are named as "not running here" (`cargo xtask dev` starts none of them).
 */

/** @typedef {{label: string, hint: string, env: string}} Tool */

/** @type {readonly Tool[]} */
export const TOOLS = [
  { label: 'pgAdmin', hint: 'PostgreSQL', env: 'PUBLIC_PGADMIN_URL' },
  { label: 'Redis Commander', hint: 'cache keys and TTLs', env: 'PUBLIC_REDIS_COMMANDER_URL' },
  { label: 'Jaeger', hint: 'traces', env: 'PUBLIC_JAEGER_URL' },
];

/**
 * An http(s) URL, or null: anything else would become a relative or script link.
 * @param {unknown} raw
 */
export function httpUrl(raw) {
  const text = typeof raw === 'string' ? raw.trim() : '';
  if (!text) return null;
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? text : null;
  } catch {
    return null;
  }
}

/**
 * The tools this build links to, the ones it does not, and Jaeger's base URL for trace links.
 * @param {Record<string, unknown>} env build-time variables (`import.meta.env`)
 * @returns {{links: (Tool & {href: string})[], missing: Tool[], jaegerUrl: string}}
 */
export function toolLinks(env) {
  /** @type {(Tool & {href: string})[]} */
  const links = [];
  /** @type {Tool[]} */
  const missing = [];
  for (const tool of TOOLS) {
    const href = httpUrl(env[tool.env]);
    if (href) links.push({ ...tool, href });
    else missing.push(tool);
  }
  const jaegerUrl = links.find((t) => t.label === 'Jaeger')?.href ?? '';
  return { links, missing, jaegerUrl };
}

/**
 * "pgAdmin is not running here", "pgAdmin and Jaeger are …", "a, b and c are …"; '' for none.
 * @param {string[]} names
 */
export function notRunningText(names) {
  if (names.length === 0) return '';
  const list = names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
  return `${list} ${names.length === 1 ? 'is' : 'are'} not running here`;
}
