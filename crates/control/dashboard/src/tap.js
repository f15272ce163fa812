// Live requests of one workload: polls /api/mesh/tap every 2 s, newest first.
import { api } from './api.js';
import { h, clear, empty, fmtClock, fmtMs } from './dom.js';
import { flagsView, parseFlags, flagLegend } from './flags.js';

const enc = encodeURIComponent;

function statusClass(code) {
  if (!code) return 'st-0';
  return `st-${String(code)[0]}`;
}

export function render(ctx) {
  const [ns = '', workload = ''] = ctx.params;
  ctx.title(`Live requests · ${workload}`);
  let paused = false;
  const pause = h('button', { type: 'button', class: 'btn btn-small', 'aria-pressed': 'false', id: 'tap-pause' }, 'Pause');
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-pressed', String(paused));
    if (!paused) load().catch(() => {});
  });
  const updated = h('span', { class: 'muted' });
  const table = h('div', null, h('div', { class: 'empty' }, 'Waiting for requests…'));
  const legend = h('div', { class: 'tap-legend' });
  ctx.root.append(
    h(
      'div',
      { class: 'page-head' },
      h('p', { class: 'crumbs' }, h('a', { href: '#/services' }, 'Services'), ' / ', ns, ' / ', h('a', { href: `#/workload/${enc(ns)}/${enc(workload)}` }, workload)),
      h('div', { class: 'title-row' }, h('h1', null, h('span', { class: 'kind-tag' }, 'Live requests'), ' ', workload), h('div', { class: 'links' }, pause, h('a', { class: 'btn btn-small', href: `#/workload/${enc(ns)}/${enc(workload)}` }, 'Metrics'))),
      h('p', { class: 'muted subtitle' }, 'The latest requests through this workload\u2019s proxy, newest first, refreshed every 2 s. ', updated),
    ),
    h('section', { class: 'card' }, table),
    legend,
  );

  let last = '';
  const load = async () => {
    if (paused) return;
    let r;
    try {
      r = await api.tap({ namespace: ns, workload, limit: 50 });
    } catch (e) {
      if (!last) ctx.fail(table, e);
      throw e;
    }
    if (!ctx.alive() || paused) return;
    updated.textContent = `Updated ${fmtClock(Date.now() / 1000)}.`;
    const reqs = [...(r.requests || [])].sort((a, b) => b.time - a.time);
    const text = JSON.stringify(reqs);
    if (text === last) return;
    last = text;
    if (!reqs.length) {
      clear(table).append(empty('No requests yet. Requests appear here as they pass through the proxy.'));
      clear(legend);
      return;
    }
    clear(table).append(
      h(
        'table',
        { class: 'table tap', 'aria-label': 'Live requests' },
        h('thead', null, h('tr', null, ['Time', 'Direction', 'Method', 'Authority', 'Path', 'Status', 'Flags', 'Duration', 'Trace'].map((t) => h('th', { scope: 'col' }, t)))),
        h(
          'tbody',
          null,
          reqs.map((q) =>
            h(
              'tr',
              { 'data-testid': 'tap-row', 'data-status': q.status, 'data-direction': q.direction, class: q.status >= 500 || q.status === 0 ? 'row-error' : null },
              h('td', { class: 'nowrap' }, fmtClock(q.time, true)),
              h('td', null, h('span', { class: `dir dir-${q.direction}` }, q.direction === 'inbound' ? '↓ in' : '↑ out')),
              h('td', null, q.method),
              h('td', { class: 'mono' }, q.authority),
              h('td', { class: 'mono path', title: q.path }, q.path),
              h('td', null, h('span', { class: `status ${statusClass(q.status)}` }, String(q.status))),
              h('td', null, flagsView(q.flags)),
              h('td', { class: 'num' }, fmtMs(q.durationMs)),
              h('td', null, q.traceId ? h('a', { href: `#/trace/${enc(q.traceId)}`, title: `Trace ${q.traceId}` }, q.traceId.slice(0, 8)) : h('span', { class: 'muted' }, '–')),
            ),
          ),
        ),
      ),
    );
    const seen = reqs.flatMap((q) => parseFlags(q.flags));
    clear(legend);
    if (seen.length) legend.append(h('h2', null, 'Response flags seen'), flagLegend(seen));
  };
  ctx.every(2000, load);
  return load();
}
