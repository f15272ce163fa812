// Envoy's (and so Istio's and weft's) response flags, in plain words. Shown next to every
// flag the dashboard displays.
import { h, own } from './dom.js';

export const FLAGS = {
  UH: 'No healthy upstream: every instance of the destination is down or ejected (503).',
  UF: 'Upstream connection failure: could not connect to the destination (503).',
  UO: 'Upstream overflow: the circuit breaker is open, too many connections or requests (503).',
  NR: 'No route: no route matches the request, or no filter chain matches the connection (404).',
  URX: 'Retry limit exceeded: every retry (or TCP connect attempt) failed.',
  NC: 'No cluster: the destination service or subset is not known (503).',
  DT: 'Duration timeout: the request or connection ran longer than its maximum duration.',
  DC: 'Downstream connection terminated: the caller went away before the answer.',
  LH: 'Local health check failed: the local service failed its health check (503).',
  UT: 'Upstream request timeout: the destination did not answer in time (504).',
  LR: 'Local reset: the proxy reset the connection itself (503).',
  UR: 'Upstream remote reset: the destination reset the connection (503).',
  UC: 'Upstream connection terminated: the destination closed the connection mid-request (503).',
  DI: 'Delay injected: fault injection delayed the request on purpose.',
  FI: 'Fault injected: fault injection aborted the request on purpose with a set status code.',
  RL: 'Rate limited: refused by a local rate limit (429).',
  UAEX: 'Denied by the external authorization service.',
  RLSE: 'Rate limit service error: the rate limit service failed, so the request was refused.',
  IH: 'Invalid header: a strictly checked header had an invalid value (400).',
  SI: 'Stream idle timeout: no bytes flowed for too long (408 or 504).',
  DPE: 'Downstream protocol error: the caller sent malformed HTTP.',
  UPE: 'Upstream protocol error: the destination answered with malformed HTTP.',
  UMSDR: 'Upstream max stream duration reached: the upstream request took longer than allowed.',
  OM: 'Overload manager: the proxy is overloaded and shed the request.',
  DF: 'DNS failure: the destination name could not be resolved.',
  DO: 'Drop overload: the request was dropped to protect an overloaded destination.',
  NFCF: 'No filter chain found: no listener filter chain matched the connection.',
  RBAC: 'Access denied by an AuthorizationPolicy (403).',
};

/** Splits Envoy's form ("UF,URX", "-", "") into flag names. */
export function parseFlags(text) {
  if (!text || text === '-') return [];
  return String(text)
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f && f !== '-');
}

export function explain(flag) {
  return own(FLAGS, flag) || 'Unknown response flag.';
}

/** One flag: its code (with the explanation as a tooltip) and the explanation as text. */
export function flagView(flag, { short = false } = {}) {
  const text = explain(flag);
  return h(
    'span',
    { class: 'flag' },
    h('abbr', { class: 'flag-code', title: text, 'data-flag': flag }, flag),
    short ? null : h('span', { class: 'flag-text' }, text),
  );
}

/** Every flag of an Envoy flags string, each explained; "–" when none. */
export function flagsView(text, opts) {
  const flags = parseFlags(text);
  if (!flags.length) return h('span', { class: 'muted', title: 'No response flags' }, '–');
  return h('span', { class: 'flags' }, flags.map((f) => flagView(f, opts)));
}

/** A legend of the given flags (or all), for pages that show flags in short form. */
export function flagLegend(flags) {
  const list = (flags && flags.length ? [...new Set(flags)] : Object.keys(FLAGS)).sort();
  return h(
    'dl',
    { class: 'flag-legend', 'aria-label': 'Response flags' },
    list.map((f) => [h('dt', null, h('code', null, f)), h('dd', null, explain(f))]),
  );
}
