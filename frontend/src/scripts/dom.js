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
 * @param {string} id
 * @returns {HTMLElement}
 */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`missing element #${id}`);
  return node;
}

/**
 * @param {string} id
 * @param {string} text
 */
export function setText(id, text) {
  byId(id).textContent = text;
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
