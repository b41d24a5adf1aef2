// @ts-check
/** The edit form: validation and the request body for writes. */

/**
 * @param {{name?: string, category?: string, price?: string, description?: string}} raw values of the inputs
 * @returns {{ok: true, value: {name: string, category: string, price: number, description: string}} | {ok: false, errors: Record<string, string>}}
 */
export function validateProduct(raw) {
  /** @type {Record<string, string>} */
  const errors = {};
  const name = (raw.name ?? '').trim();
  const category = (raw.category ?? '').trim();
  const description = (raw.description ?? '').trim();
  const priceText = (raw.price ?? '').trim();
  if (!name) errors.name = 'A name is required.';
  else if (name.length > 255) errors.name = 'At most 255 characters.';
  if (!category) errors.category = 'A category is required.';
  else if (category.length > 100) errors.category = 'At most 100 characters.';
  if (!/^\d{1,8}(\.\d{1,2})?$/.test(priceText)) errors.price = 'A price like 79.99 (0 or more, at most two decimals).';
  if (Object.keys(errors).length) return { ok: false, errors };
  return { ok: true, value: { name, category, price: Number(priceText), description } };
}

/**
 * The fields of a product as form values.
 * @param {any} p
 */
export function formValues(p) {
  return {
    name: String(p?.name ?? ''),
    category: String(p?.category ?? ''),
    price: typeof p?.price === 'number' ? p.price.toFixed(2) : String(p?.price ?? ''),
    description: String(p?.description ?? ''),
  };
}
