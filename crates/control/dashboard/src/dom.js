// Small DOM and formatting helpers shared by the pages.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** obj[key] when obj has key as its own property (so "constructor", "__proto__" from data miss). */
export function own(obj, key) {
  return obj && Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
}

// Attributes that take a URL: only links within the page ("#/…") or to a same-origin path.
const URL_ATTRS = new Set(['href', 'src', 'action', 'formaction', 'xlink:href', 'srcset', 'poster']);
export function safeUrl(v) {
  const u = String(v);
  return u.startsWith('#') || (u.startsWith('/') && !u.startsWith('//') && !u.startsWith('/\\')) ? u : null;
}

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (/^on/i.test(k)) {
      // Handlers are functions only: a string would become inline script.
      if (typeof v === 'function') el.addEventListener(k.slice(2), v);
      else throw new TypeError(`h(): ${k} must be a function`);
    } else if (URL_ATTRS.has(k.toLowerCase())) {
      const u = safeUrl(v);
      if (u !== null) el.setAttribute(k, u);
      else console.warn(`h(): refused ${k}=${JSON.stringify(String(v))}`);
    } else if (k === 'class') el.setAttribute('class', v);
    else if (k === 'text') el.textContent = v;
    else if (k === 'style') el.style.cssText = v; // CSSOM: allowed under a strict style-src
    else if (k === 'value' && 'value' in el && el.namespaceURI !== SVG_NS) el.value = v;
    else if (k === 'checked' || k === 'selected' || k === 'disabled') el[k] = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** h('div', {class: 'x', onclick: fn}, child, 'text', [more]) */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function select(attrs, options, current) {
  return h(
    'select',
    attrs,
    options.map((o) => {
      const [value, label] = Array.isArray(o) ? o : [o, o];
      return h('option', { value, selected: String(value) === String(current) }, label);
    }),
  );
}

/** A labelled form control: <label><span>text</span>control</label>. */
export function field(label, control, extra) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), control, extra);
}

export function errorBox(message) {
  return h('div', { class: 'alert', role: 'alert' }, message);
}

export function empty(message) {
  return h('div', { class: 'empty' }, message);
}

const num = (v, digits) =>
  v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });

export function fmtRps(v) {
  if (v === null || v === undefined) return '–';
  if (v === 0) return '0 rps';
  if (v < 0.01) return '<0.01 rps';
  return `${num(v, v < 10 ? 2 : 1)} rps`;
}

export function fmtPct(fraction) {
  if (fraction === null || fraction === undefined) return '–';
  const p = fraction * 100;
  if (p === 0) return '0%';
  if (p < 0.1) return '<0.1%';
  return `${num(p, p < 10 ? 1 : 0)}%`;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '–';
  if (ms === 0) return '0';
  if (ms < 1) return `${num(ms * 1000, 0)}µs`;
  if (ms < 1000) return `${num(ms, ms < 10 ? 2 : 1)}ms`;
  if (ms < 60000) return `${num(ms / 1000, 2)}s`;
  return `${num(ms / 60000, 1)}min`;
}

/** µs → readable duration. */
export const fmtMicros = (us) => fmtMs(us / 1000);

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Seconds since epoch → local "HH:MM:SS" (with ms when asked). */
export function fmtClock(seconds, withMs) {
  const d = new Date(seconds * 1000);
  const t = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return withMs ? `${t}.${pad(d.getMilliseconds(), 3)}` : t;
}

/** Seconds since epoch → local "YYYY-MM-DD HH:MM:SS". */
export function fmtDateTime(seconds) {
  const d = new Date(seconds * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtClock(seconds)}`;
}

export function fmtBytes(v) {
  if (v === null || v === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${num(v, i ? 1 : 0)} ${units[i]}`;
}

/** "Data: weft control (in-memory history)" or "Data: Prometheus at http://…" (the API's `source`). */
export function showSource(el, text) {
  el.hidden = !text;
  el.textContent = text ? `Data: ${text}` : '';
  el.title = text ? `Where these numbers come from: ${text}` : '';
}

/** A stable colour for a name (services in the trace view). */
const PALETTE = ['#1f77b4', '#17becf', '#9467bd', '#2ca02c', '#e377c2', '#8c564b', '#bcbd22', '#ff7f0e', '#7f7f7f', '#393b79'];
export function colorFor(name) {
  let hsh = 0;
  for (const ch of String(name)) hsh = (hsh * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[hsh % PALETTE.length];
}

export const HEALTH = {
  healthy: { label: 'Healthy', icon: '✓' },
  degraded: { label: 'Degraded', icon: '!' },
  failing: { label: 'Failing', icon: '✕' },
  idle: { label: 'Idle', icon: '–' },
};

export function healthBadge(health) {
  const hl = own(HEALTH, health) || { label: health ? String(health) : 'unknown', icon: '?' };
  return h('span', { class: `health health-${own(HEALTH, health) ? health : 'unknown'}` }, h('span', { class: 'health-icon', 'aria-hidden': 'true' }, hl.icon), hl.label);
}
