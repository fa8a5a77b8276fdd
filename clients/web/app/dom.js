// DOM helpers. Everything a user or the server wrote reaches the page as
// text nodes (`h` turns every string child into a Text node, and attributes
// are set one by one): the app never parses HTML from data.

/**
 * Creates an element: `h('button', {type: 'button', class: 'x', onclick: f}, 'Label')`.
 * Props starting with `on` become listeners, `dataset` and `aria` objects
 * become data-/aria- attributes, `false`/`null`/`undefined` props are skipped.
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      element.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      for (const [name, data] of Object.entries(value)) element.dataset[name] = data;
    } else if (key === 'class') {
      element.className = value;
    } else if (key === 'text') {
      element.textContent = value;
    } else if (key in element && typeof value !== 'string') {
      element[key] = value;
    } else {
      element.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(element, children);
  return element;
}

/** Appends children: nodes as they are, strings and numbers as text. */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/**
 * Text someone wrote (a message, a quote, a name), isolated from what is
 * around it and laid out in the direction of its own first letter. So an
 * Arabic or Hebrew message reads right to left with its punctuation where
 * its writer put it, and an override left open in a message (U+202E,
 * which the server keeps: mixed-direction text needs such marks) cannot
 * reverse the labels beside it, such as "(edited)". Styled by `.user-text`.
 */
export function userText(...children) {
  return h('span', { class: 'user-text' }, ...children);
}

/** Removes every child of `element`. */
export function clear(element) {
  element.replaceChildren();
  return element;
}

export const $ = (id) => document.getElementById(id);

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dateFormat = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });
const yearFormat = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'long', day: 'numeric' });
const shortDate = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });

export const time = (ms) => timeFormat.format(new Date(ms));

/** The local calendar day of `ms`, as a comparable key. */
export function dayKey(ms) {
  const date = new Date(ms);
  return `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
}

/** "Today", "Yesterday", or the date. */
export function dayLabel(ms) {
  const now = new Date();
  const key = dayKey(ms);
  if (key === dayKey(now.getTime())) return 'Today';
  if (key === dayKey(now.getTime() - 86_400_000)) return 'Yesterday';
  const date = new Date(ms);
  return date.getFullYear() === now.getFullYear() ? dateFormat.format(date) : yearFormat.format(date);
}

/** A time for lists: the hour today, the date before. */
export function shortTime(ms) {
  return dayKey(ms) === dayKey(Date.now()) ? time(ms) : shortDate.format(new Date(ms));
}

/** Human file size. */
export function fileSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** One or two letters for an avatar. */
export function initials(name) {
  const words = String(name || '?').trim().split(/\s+/);
  const letters = words.length > 1 ? words[0][0] + words[1][0] : words[0].slice(0, 2);
  return letters.toUpperCase();
}

/** A stable hue for a user's avatar. */
export function hue(id) {
  let hash = 0;
  for (const char of String(id)) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return hash % 360;
}

const ICONS = {
  lock: 'M12 2a5 5 0 0 0-5 5v3H6a2 2 0 0 0-2 2v8a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2v-8a2 2 0 0 0-2-2h-1V7a5 5 0 0 0-5-5Zm-3 8V7a3 3 0 0 1 6 0v3Z',
  file: 'M6 2a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8l-6-6Zm7 1.5L18.5 9H13Z',
};

/** A small SVG icon (no emoji: not every system has a font for them). */
export function icon(name) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', 'icon');
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', ICONS[name]);
  svg.append(path);
  return svg;
}
