// @ts-check
/** Small helpers shared by the dashboard's modules: finding elements and showing an outcome. */

/**
 * @template {HTMLElement} [T=HTMLElement]
 * @param {string} id
 * @returns {T}
 */
export function byId (id) {
  const element = document.getElementById(id)
  if (element === null) throw new Error(`the page has no #${id}`)
  return /** @type {T} */ (element)
}

/**
 * The element marked `data-field="name"` inside root.
 * @param {ParentNode} root
 * @param {string} name
 * @returns {HTMLElement}
 */
export function part (root, name) {
  const element = root.querySelector(`[data-field="${name}"]`)
  if (!(element instanceof HTMLElement)) throw new Error(`no ${name} field`)
  return element
}

/**
 * Shows an outcome in a result line; the kind picks its colour.
 * @param {HTMLElement} element
 * @param {'ok' | 'error' | 'pending'} kind
 * @param {string} text
 */
export function say (element, kind, text) {
  element.dataset.kind = kind
  element.textContent = text
}

/** @param {unknown} err */
export function messageOf (err) {
  return err instanceof Error ? err.message : String(err)
}
