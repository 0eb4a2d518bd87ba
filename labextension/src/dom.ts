/**
 * Small DOM helpers shared by the panel's sections: elements built from text (never HTML),
 * buttons, and the formatting of sizes, dates and links.
 */

export type Child = Node | string | null | undefined | false;

/** Create an element with attributes and children (strings become text nodes). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child) {
      node.append(child);
    }
  }
  return node;
}

/** A minimal JupyterLab button; `action` becomes its `data-action`. */
export function button(
  label: string,
  action: string,
  onClick: () => void,
  title = ''
): HTMLElement {
  const node = h(
    'button',
    {
      class: 'jp-Button jp-mod-minimal jp-mod-styled jp-BentoPanel-action',
      'data-action': action,
      title: title || label
    },
    label
  );
  node.addEventListener('click', onClick);
  return node;
}

/** The text, as an absolute URL, when it is an http(s) address; null otherwise (say a
 * `javascript:` or `data:` URL in a server record), so it never becomes a link. */
export function httpUrl(text: string | null | undefined): string | null {
  if (!text) {
    return null;
  }
  try {
    const url = new URL(text, window.location.origin);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

export function formatBytes(n?: number): string {
  if (n === undefined || n === null) {
    return '';
  }
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = n;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return `${value.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function formatDate(text?: string | number): string {
  if (text === undefined || text === null || text === '') {
    return '';
  }
  const date = typeof text === 'number' ? new Date(text * 1000) : new Date(text);
  return isNaN(date.getTime()) ? String(text) : date.toLocaleString();
}
