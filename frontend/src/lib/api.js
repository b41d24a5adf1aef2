// @ts-check
/**
 * The API client: one place that knows URLs, status codes and problem+json.
 * No DOM here, so it is tested in Node with a fake `fetch`.
 */

/** An error answer (problem+json) or a network failure (status 0). */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the API could not be reached
   * @param {string} detail what went wrong, for a person
   * @param {{title?: string, type?: string, retryAfter?: string|null}} [extra]
   */
  constructor(status, detail, extra = {}) {
    super(detail);
    this.name = 'ApiError';
    this.status = status;
    this.detail = detail;
    this.title = extra.title ?? '';
    this.type = extra.type ?? '';
    this.retryAfter = extra.retryAfter ?? null;
  }
}

/** The original's "not found" detail for a product that does not exist. */
export const PRODUCT_NOT_FOUND = 'Product not found';

/**
 * True when an error means "this API has no such endpoint (yet)": 405, 501, or a 404
 * that is not about a missing product. Used to hide panels for features the API lacks.
 * @param {unknown} err
 */
export function isMissingEndpoint(err) {
  if (!(err instanceof ApiError)) return false;
  if (err.status === 405 || err.status === 501) return true;
  return err.status === 404 && err.detail !== PRODUCT_NOT_FOUND;
}

/**
 * Joins a base URL (may be '' for same origin, may end in '/') and an absolute path.
 * @param {string} base
 * @param {string} path
 */
export function joinUrl(base, path) {
  const b = (base ?? '').trim().replace(/\/+$/, '');
  return `${b}${path.startsWith('/') ? path : `/${path}`}`;
}

/**
 * Reads an error body into an ApiError: problem+json `detail`, else any text, else the status.
 * @param {Response} res
 */
export async function errorFrom(res) {
  let body = null;
  let text = '';
  try {
    text = await res.text();
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  const detail =
    body && typeof body.detail === 'string' && body.detail
      ? body.detail
      : text && text.length < 300 && !text.trimStart().startsWith('<')
        ? text
        : `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
  return new ApiError(res.status, detail, {
    title: body && typeof body.title === 'string' ? body.title : res.statusText,
    type: body && typeof body.type === 'string' ? body.type : '',
    retryAfter: res.headers.get('retry-after'),
  });
}

/**
 * Client-side check of a product id typed by a person: a positive integer.
 * @param {string|number} raw
 * @returns {{ok: true, id: number} | {ok: false, error: string}}
 */
export function parseProductId(raw) {
  const text = String(raw ?? '').trim();
  if (text === '') return { ok: false, error: 'Enter a product id (a whole number from 1).' };
  if (!/^\d+$/.test(text)) return { ok: false, error: `"${text}" is not a product id: use a whole number from 1.` };
  const id = Number(text);
  if (id < 1) return { ok: false, error: 'Product ids start at 1.' };
  if (id > 2147483647) return { ok: false, error: 'That id is too large (at most 2147483647).' };
  return { ok: true, id };
}

/**
 * @typedef {object} RequestOptions
 * @property {unknown} [body] JSON body
 * @property {string} [token] bearer token; sent only when non-empty
 * @property {number[]} [acceptStatus] non-2xx statuses whose JSON body is a normal answer (e.g. 503 from /health)
 * @property {AbortSignal} [signal]
 */

/**
 * @template T
 * @typedef {{data: T, status: number, roundTripMs: number, headers: Headers}} Answer
 */

/**
 * @param {{base?: string, fetch?: typeof fetch, now?: () => number, sleep?: (ms: number) => Promise<void>}} [options]
 */
export function createApi(options = {}) {
  const base = options.base ?? '';
  const sleep = options.sleep ?? ((/** @type {number} */ ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  const fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const now = options.now ?? (() => globalThis.performance.now());

  /**
   * @param {string} method
   * @param {string} path
   * @param {RequestOptions} [opts]
   * @returns {Promise<Answer<any>>}
   */
  async function request(method, path, opts = {}) {
    /** @type {Record<string,string>} */
    const headers = { Accept: 'application/json, application/problem+json' };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    const token = (opts.token ?? '').trim();
    if (token) headers.Authorization = `Bearer ${token}`;
    const started = now();
    let res;
    try {
      res = await fetchImpl(joinUrl(base, path), {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        cache: 'no-store',
        signal: opts.signal,
      });
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new ApiError(0, `Cannot reach the API (${why}).`);
    }
    const roundTripMs = now() - started;
    if (!res.ok && !(opts.acceptStatus ?? []).includes(res.status)) throw await errorFrom(res);
    let data = null;
    if (res.status !== 204) {
      const text = await res.text();
      try {
        data = text ? JSON.parse(text) : null;
      } catch {
        throw new ApiError(res.status, `The API answered ${method} ${path} with something that is not JSON.`);
      }
    }
    return { data, status: res.status, roundTripMs, headers: res.headers };
  }

  return {
    request,
    /** @param {number} id */
    getProduct: (id) => request('GET', `/products/${encodeURIComponent(id)}`),
    /** @param {number} limit @param {number} offset */
    listProducts: (limit, offset) => request('GET', `/products?limit=${limit}&offset=${offset}`),
    stats: () => request('GET', '/cache/stats'),
    /**
     * The API refuses a clear within its interval of the last one (429 with Retry-After,
     * 1 s by default): a demo that clears before it runs waits that out, twice at most.
     * @param {string} [token]
     */
    clearCache: async (token) => {
      for (let attempt = 1; ; attempt += 1) {
        try {
          return await request('DELETE', '/cache/clear', { token });
        } catch (e) {
          if (!(e instanceof ApiError) || e.status !== 429 || attempt > 2) throw e;
          const seconds = Number(e.retryAfter);
          await sleep(Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 5) * 1000 : 1000);
        }
      }
    },
    health: () => request('GET', '/health', { acceptStatus: [503] }),
    /** @param {number} id */
    cacheEntry: (id) => request('GET', `/cache/entries/${encodeURIComponent(id)}`),
    openapi: () => request('GET', '/openapi.json'),
    /** @param {object} product @param {string} [token] */
    createProduct: (product, token) => request('POST', '/products', { body: product, token }),
    /** @param {number} id @param {object} product @param {string} [token] */
    replaceProduct: (id, product, token) => request('PUT', `/products/${encodeURIComponent(id)}`, { body: product, token }),
    /** @param {number} id @param {object} changes @param {string} [token] */
    patchProduct: (id, changes, token) => request('PATCH', `/products/${encodeURIComponent(id)}`, { body: changes, token }),
    /** @param {number} id @param {string} [token] */
    deleteProduct: (id, token) => request('DELETE', `/products/${encodeURIComponent(id)}`, { token }),
  };
}

/** @typedef {ReturnType<typeof createApi>} Api */

/**
 * What the OpenAPI document says this API can do. Missing document → nothing extra known.
 * @param {any} doc
 */
export function featuresFromOpenApi(doc) {
  const paths = doc && typeof doc === 'object' && doc.paths && typeof doc.paths === 'object' ? doc.paths : {};
  const item = paths['/products/{id}'] ?? {};
  const collection = paths['/products'] ?? {};
  return {
    create: Boolean(collection.post),
    update: Boolean(item.put || item.patch),
    put: Boolean(item.put),
    remove: Boolean(item.delete),
    cacheEntries: Object.keys(paths).some((p) => p.startsWith('/cache/entries/')),
  };
}
