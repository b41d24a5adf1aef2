// @ts-check
/**
 * DOM helpers that never parse HTML: every piece of data goes in as a text node or an
 * attribute value, so product fields cannot inject markup or script.
 */

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * @param {Element} node
 * @param {Record<string, unknown>} props
 */
function applyProps(node, props) {
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === 'text') node.textContent = String(value);
    else if (key === 'class') node.setAttribute('class', String(value));
    else if (key === 'style' && typeof value === 'object') Object.assign(/** @type {HTMLElement} */ (node).style, value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), /** @type {EventListener} */ (value));
    else node.setAttribute(key, value === true ? '' : String(value));
  }
}

/**
 * @param {string} tag
 * @param {Record<string, unknown>} [props]
 * @param {...(Node|string|null|undefined|false)} children strings become text nodes
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  applyProps(node, props);
  for (const c of children) if (c != null && c !== false) node.append(c);
  return node;
}

/**
 * @param {string} tag
 * @param {Record<string, unknown>} [attrs]
 * @param {...(Node|string|null|undefined|false)} children
 */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  applyProps(node, attrs);
  for (const c of children) if (c != null && c !== false) node.append(c);
  return node;
}

/**
 * An element of the page by id (main.js uses it to find each panel's root).
 * @param {string} id
 * @returns {HTMLElement}
 */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`missing element #${id}`);
  return node;
}

/**
 * The elements of one panel, looked up by id inside the panel's root only, so a panel's
 * script cannot reach into another panel's markup by accident.
 * @param {ParentNode} root
 */
export function scope(root) {
  /** @param {string} id @returns {HTMLElement} */
  const get = (id) => {
    const node = root.querySelector(`#${id}`);
    if (!(node instanceof HTMLElement)) throw new Error(`missing element #${id}`);
    return node;
  };
  return {
    get,
    /** @param {string} id */
    input: (id) => /** @type {HTMLInputElement} */ (get(id)),
    /** @param {string} id */
    button: (id) => /** @type {HTMLButtonElement} */ (get(id)),
    /** An `<svg>` of the panel. @param {string} id */
    chart: (id) => {
      const node = root.querySelector(`#${id}`);
      if (!(node instanceof SVGSVGElement)) throw new Error(`missing chart #${id}`);
      return node;
    },
    /** @param {string} id @param {string} text */
    setText: (id, text) => {
      get(id).textContent = text;
    },
  };
}

/**
 * Shows an inline message in a (hidden by default) region; an empty message hides it.
 * @param {HTMLElement} region
 * @param {string} message
 */
export function say(region, message) {
  region.textContent = message;
  region.hidden = !message;
}

/** @param {HTMLElement} button @param {boolean} busy */
export function setBusy(button, busy) {
  /** @type {HTMLButtonElement} */ (button).disabled = busy;
  button.setAttribute('aria-busy', String(busy));
}

/**
 * The drawn width of a chart in CSS pixels (fallback before layout).
 * @param {Element} chart
 * @param {number} fallback
 */
export function chartWidth(chart, fallback) {
  const w = Math.round(chart.getBoundingClientRect().width);
  return w >= 200 ? w : fallback;
}
