// Traces: Jaeger's "Find Traces" form, a duration-over-time scatter plot, the result list,
// and one trace's waterfall.
import { api, ApiError } from './api.js';
import { h, s, clear, select, field, errorBox, empty, fmtMicros, fmtDateTime, fmtClock, colorFor, own } from './dom.js';

const LOOKBACKS = [['5m', 'Last 5 minutes'], ['15m', 'Last 15 minutes'], ['30m', 'Last 30 minutes'], ['1h', 'Last hour'], ['2h', 'Last 2 hours'], ['6h', 'Last 6 hours'], ['12h', 'Last 12 hours'], ['24h', 'Last 24 hours'], ['2d', 'Last 2 days']];
const SORTS = [['recent', 'Most recent'], ['longest', 'Longest first'], ['shortest', 'Shortest first'], ['spans', 'Most spans'], ['errors', 'Most errors']];
const FIELDS = ['service', 'operation', 'tags', 'lookback', 'minDuration', 'maxDuration', 'limit'];

export function isErrorSpan(span) {
  return (span.tags || []).some((t) => t.key === 'error' && (t.value === true || t.value === 'true'));
}

/** Parent span id within the trace, or null. */
function parentOf(span, ids) {
  const refs = span.references || [];
  const ref = refs.find((r) => r.refType === 'CHILD_OF' && ids.has(r.spanID)) || refs.find((r) => ids.has(r.spanID));
  return ref ? ref.spanID : null;
}

function serviceOf(trace, span) {
  const p = (trace.processes || {})[span.processID];
  return p ? p.serviceName : span.processID || 'unknown';
}

export function summarize(trace) {
  const spans = trace.spans || [];
  const ids = new Set(spans.map((sp) => sp.spanID));
  let start = Infinity;
  let end = -Infinity;
  for (const sp of spans) {
    start = Math.min(start, sp.startTime);
    end = Math.max(end, sp.startTime + sp.duration);
  }
  const roots = spans.filter((sp) => parentOf(sp, ids) === null).sort((a, b) => a.startTime - b.startTime);
  const root = roots[0] || spans[0];
  const services = new Map();
  for (const sp of spans) {
    const name = serviceOf(trace, sp);
    services.set(name, (services.get(name) || 0) + 1);
  }
  return {
    id: trace.traceID || (root && root.traceID),
    name: root ? `${serviceOf(trace, root)}: ${root.operationName}` : '(no spans)',
    spans: spans.length,
    errors: spans.filter(isErrorSpan).length,
    start: spans.length ? start : 0,
    duration: spans.length ? end - start : 0,
    services,
  };
}

function sortSummaries(list, how) {
  const cmp = own({
    recent: (a, b) => b.start - a.start,
    longest: (a, b) => b.duration - a.duration,
    shortest: (a, b) => a.duration - b.duration,
    spans: (a, b) => b.spans - a.spans,
    errors: (a, b) => b.errors - a.errors || b.start - a.start,
  }, how) || ((a, b) => b.start - a.start);
  return [...list].sort(cmp);
}

function ago(us) {
  const sec = Math.max(0, Date.now() / 1000 - us / 1e6);
  if (sec < 60) return `${Math.round(sec)} s ago`;
  if (sec < 3600) return `${Math.round(sec / 60)} min ago`;
  if (sec < 86400) return `${Math.round(sec / 3600)} h ago`;
  return `${Math.round(sec / 86400)} d ago`;
}

function niceTicks(min, max, count) {
  if (max <= min) return [min];
  const step0 = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= step0) || step0;
  const ticks = [];
  for (let v = Math.ceil(min / step) * step; v <= max + 1e-9; v += step) ticks.push(v);
  return ticks;
}

function scatter(summaries, width, onOpen) {
  const H = 200;
  const pad = { l: 64, r: 16, t: 14, b: 30 };
  const W = Math.max(width, 320);
  const xs = summaries.map((t) => t.start);
  const ys = summaries.map((t) => t.duration);
  let x0 = Math.min(...xs);
  let x1 = Math.max(...xs);
  if (x1 - x0 < 1e6) {
    x0 -= 5e5;
    x1 += 5e5;
  }
  const y1 = Math.max(...ys) * 1.1 || 1;
  const X = (v) => pad.l + ((v - x0) / (x1 - x0)) * (W - pad.l - pad.r);
  const Y = (v) => H - pad.b - (v / y1) * (H - pad.t - pad.b);
  const grid = [];
  for (const v of niceTicks(0, y1, 4)) {
    grid.push(s('line', { class: 'grid', x1: pad.l, x2: W - pad.r, y1: Y(v), y2: Y(v) }), s('text', { class: 'tick', x: pad.l - 6, y: Y(v), 'text-anchor': 'end', dy: '0.35em' }, fmtMicros(v)));
  }
  const xt = [];
  const n = Math.max(2, Math.min(6, Math.floor((W - pad.l - pad.r) / 110)));
  for (let i = 0; i <= n; i += 1) {
    const v = x0 + ((x1 - x0) * i) / n;
    xt.push(s('text', { class: 'tick', x: X(v), y: H - 10, 'text-anchor': i === 0 ? 'start' : i === n ? 'end' : 'middle' }, fmtClock(v / 1e6)));
  }
  // Biggest first so that small dots stay on top and clickable.
  const dots = [...summaries]
    .sort((a, b) => b.spans - a.spans)
    .map((t) => {
      const r = Math.min(12, 4 + Math.sqrt(t.spans) * 1.5);
      const label = `${t.name}, ${fmtMicros(t.duration)}, ${t.spans} spans${t.errors ? `, ${t.errors} errors` : ''}, at ${fmtDateTime(t.start / 1e6)}`;
      const c = s('circle', { class: `dot${t.errors ? ' dot-error' : ''}`, cx: X(t.start), cy: Y(t.duration), r, tabindex: 0, role: 'link', 'aria-label': label, 'data-testid': 'trace-dot', 'data-id': t.id }, s('title', null, label));
      c.addEventListener('click', () => onOpen(t.id));
      c.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          onOpen(t.id);
        }
      });
      return c;
    });
  return s(
    'svg',
    { class: 'scatter', width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'group', 'aria-label': 'Trace durations over time' },
    grid,
    s('line', { class: 'axis', x1: pad.l, x2: W - pad.r, y1: H - pad.b, y2: H - pad.b }),
    xt,
    s('text', { class: 'axis-title', x: 12, y: pad.t + (H - pad.t - pad.b) / 2, transform: `rotate(-90 12 ${pad.t + (H - pad.t - pad.b) / 2})`, 'text-anchor': 'middle' }, 'Duration'),
    dots,
  );
}

function resultRow(t, maxDuration) {
  return h(
    'a',
    { class: 'trace-result', href: `#/trace/${encodeURIComponent(t.id)}`, 'data-testid': 'trace-result', 'data-error': t.errors > 0 ? 'true' : 'false', 'data-trace-id': t.id },
    h(
      'div',
      { class: 'tr-head' },
      h('span', { class: 'tr-name' }, t.name, ' ', h('span', { class: 'tr-id' }, t.id.slice(0, 7))),
      h('span', { class: 'tr-duration' }, fmtMicros(t.duration)),
    ),
    h('div', { class: 'tr-bar', 'aria-hidden': 'true' }, h('span', { style: `width:${Math.max(1, (t.duration / (maxDuration || 1)) * 100).toFixed(1)}%` })),
    h(
      'div',
      { class: 'tr-body' },
      h('span', { class: 'pill' }, `${t.spans} span${t.spans === 1 ? '' : 's'}`),
      t.errors ? h('span', { class: 'pill pill-error' }, `${t.errors} error${t.errors === 1 ? '' : 's'}`) : h('span', { class: 'pill pill-ok' }, 'no errors'),
      [...t.services.entries()].sort().map(([name, count]) => h('span', { class: 'svc-chip', style: `border-left-color:${colorFor(name)}` }, `${name} (${count})`)),
      h('span', { class: 'tr-time' }, fmtDateTime(t.start / 1e6), h('span', { class: 'muted' }, ` · ${ago(t.start)}`)),
    ),
  );
}

export function renderSearch(ctx) {
  ctx.title('Traces');
  const q = ctx.query;
  const want = Object.fromEntries(FIELDS.map((f) => [f, q.get(f) || '']));
  if (!want.lookback) want.lookback = '1h';
  if (!want.limit) want.limit = '20';
  const sort = q.get('sort') || 'recent';

  const serviceSel = select({ id: 'trace-service', name: 'service', required: true }, want.service ? [want.service] : [['', 'Loading…']], want.service);
  const opSel = select({ id: 'trace-operation', name: 'operation' }, [['', 'all']], '');
  const tags = h('input', { id: 'trace-tags', name: 'tags', type: 'text', value: want.tags, placeholder: 'http.status_code=200 error=true', autocomplete: 'off', spellcheck: 'false' });
  const lookback = select({ id: 'trace-lookback', name: 'lookback' }, LOOKBACKS, want.lookback);
  const minD = h('input', { id: 'trace-min', name: 'minDuration', type: 'text', value: want.minDuration, placeholder: 'e.g. 100ms', autocomplete: 'off' });
  const maxD = h('input', { id: 'trace-max', name: 'maxDuration', type: 'text', value: want.maxDuration, placeholder: 'e.g. 1.2s', autocomplete: 'off' });
  const limit = h('input', { id: 'trace-limit', name: 'limit', type: 'number', min: 1, max: 1500, value: want.limit });
  const results = h('section', { class: 'trace-results', 'aria-label': 'Search results' });

  const loadOperations = async (service, keep) => {
    clear(opSel).append(h('option', { value: '' }, 'all'));
    if (!service) return;
    try {
      const ops = (await api.operations(service)).data || [];
      if (!ctx.alive() || serviceSel.value !== service) return;
      const list = [...new Set([...ops, ...(keep ? [keep] : [])])].sort();
      opSel.append(...list.map((o) => h('option', { value: o, selected: o === keep }, o)));
    } catch {
      if (keep) opSel.append(h('option', { value: keep, selected: true }, keep));
    }
  };
  serviceSel.addEventListener('change', () => loadOperations(serviceSel.value, ''));

  const form = h(
    'form',
    {
      class: 'search-form',
      'aria-label': 'Find traces',
      onsubmit: (e) => {
        e.preventDefault();
        ctx.navigate(
          ctx.hashFor('/traces', {
            service: serviceSel.value,
            operation: opSel.value,
            tags: tags.value.trim(),
            lookback: lookback.value,
            minDuration: minD.value.trim(),
            maxDuration: maxD.value.trim(),
            limit: limit.value,
            sort: sort === 'recent' ? '' : sort,
          }),
        );
      },
    },
    h('h2', null, 'Search'),
    field('Service', serviceSel),
    field('Operation', opSel),
    field('Tags', tags, h('span', { class: 'hint' }, 'logfmt: key=value pairs separated by spaces')),
    field('Lookback', lookback),
    h('div', { class: 'row2' }, field('Min duration', minD), field('Max duration', maxD)),
    field('Limit results', limit),
    h('button', { type: 'submit', class: 'btn btn-primary', id: 'trace-find' }, 'Find Traces'),
  );

  ctx.root.append(h('div', { class: 'page-head' }, h('h1', null, 'Traces')), h('div', { class: 'traces-layout' }, form, results));

  const services = api
    .jaegerServices()
    .then((r) => {
      if (!ctx.alive()) return;
      const list = [...new Set([...(r.data || []), ...(want.service ? [want.service] : [])])].sort();
      clear(serviceSel);
      if (!list.length) serviceSel.append(h('option', { value: '' }, 'No services yet'));
      serviceSel.append(...list.map((sv) => h('option', { value: sv, selected: sv === want.service }, sv)));
      if (!want.service && list.length) serviceSel.value = list[0];
      return loadOperations(serviceSel.value, want.operation);
    })
    .catch((e) => {
      if (ctx.alive() && !want.service) ctx.fail(results, e);
    });

  if (!want.service) {
    results.append(empty('Choose a service and press Find Traces.'));
    return services;
  }

  results.append(h('div', { class: 'empty' }, 'Searching…'));
  const params = { ...want };
  return api
    .traces(params)
    .then((r) => {
      if (!ctx.alive()) return;
      clear(results);
      const summaries = (r.data || []).map(summarize).filter((t) => t.id);
      if (!summaries.length) {
        results.append(empty('No traces found. Try a longer lookback or fewer tags.'));
        return;
      }
      const sorted = sortSummaries(summaries, sort);
      const sortSel = select(
        { id: 'trace-sort', onchange: (e) => ctx.navigate(ctx.hashFor('/traces', { ...want, sort: e.target.value === 'recent' ? '' : e.target.value })) },
        SORTS,
        sort,
      );
      const plot = h('div', { class: 'scatter-wrap card' });
      results.append(plot, h('div', { class: 'results-head' }, h('h2', null, `${summaries.length} Trace${summaries.length === 1 ? '' : 's'}`), field('Sort', sortSel)));
      const max = Math.max(...summaries.map((t) => t.duration));
      results.append(h('div', { class: 'result-list' }, sorted.map((t) => resultRow(t, max))));
      const open = (id) => ctx.navigate(`#/trace/${encodeURIComponent(id)}`);
      const drawPlot = () => clear(plot).append(scatter(summaries, plot.clientWidth - 24, open));
      drawPlot();
      const onResize = () => drawPlot();
      window.addEventListener('resize', onResize);
      ctx.onCleanup(() => window.removeEventListener('resize', onResize));
    })
    .catch((e) => {
      if (!ctx.alive()) return;
      if (e instanceof ApiError) {
        clear(results).append(errorBox(`Search failed: ${e.message}`));
      } else ctx.fail(results, e);
    });
}

// ---- one trace ----------------------------------------------------------------------------

function tagValue(v) {
  if (v === null || v === undefined) return '';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function kvTable(caption, rows) {
  if (!rows.length) return null;
  return h(
    'table',
    { class: 'kv-table' },
    h('caption', null, caption),
    h('tbody', null, rows.map(([k, v]) => h('tr', null, h('th', { scope: 'row' }, k), h('td', null, v)))),
  );
}

export function renderTrace(ctx) {
  const id = ctx.params[0] || '';
  ctx.title(`Trace ${id.slice(0, 7)}`);
  const box = h('div', { class: 'trace-view' }, h('div', { class: 'empty' }, 'Loading the trace…'));
  ctx.root.append(box);
  return api
    .trace(id)
    .then((r) => {
      if (!ctx.alive()) return;
      const trace = (r.data || [])[0];
      clear(box);
      if (!trace || !(trace.spans || []).length) {
        box.append(h('h1', null, `Trace ${id} not found`), h('p', null, h('a', { href: '#/traces' }, 'Search traces')));
        return;
      }
      drawTrace(box, trace, ctx);
    })
    .catch((e) => {
      if (!ctx.alive()) return;
      if (e instanceof ApiError && e.status === 404) {
        clear(box).append(h('h1', null, `Trace ${id} not found`), h('p', { class: 'muted' }, e.message), h('p', null, h('a', { href: '#/traces' }, 'Search traces')));
      } else ctx.fail(box, e);
    });
}

function drawTrace(box, trace, ctx) {
  const sum = summarize(trace);
  const spans = trace.spans;
  const ids = new Set(spans.map((sp) => sp.spanID));
  const children = new Map();
  const roots = [];
  for (const sp of spans) {
    const p = parentOf(sp, ids);
    if (p === null) roots.push(sp);
    else {
      if (!children.has(p)) children.set(p, []);
      children.get(p).push(sp);
    }
  }
  const byStart = (a, b) => a.startTime - b.startTime || a.spanID.localeCompare(b.spanID);
  const ordered = [];
  const seen = new Set();
  // Depth first with an explicit stack: a deep chain of spans must not overflow the call stack.
  const walk = (top) => {
    const stack = [[top, 0]];
    while (stack.length) {
      const [sp, depth] = stack.pop();
      if (seen.has(sp.spanID)) continue;
      seen.add(sp.spanID);
      ordered.push([sp, depth]);
      const kids = (children.get(sp.spanID) || []).sort(byStart);
      for (let i = kids.length - 1; i >= 0; i -= 1) stack.push([kids[i], depth + 1]);
    }
  };
  roots.sort(byStart).forEach((sp) => walk(sp));
  for (const sp of spans) if (!seen.has(sp.spanID)) walk(sp); // cycles: shown flat
  const depth = ordered.reduce((m, [, d]) => Math.max(m, d), 0) + 1;
  const total = sum.duration || 1;
  const pct = (v) => `${((v / total) * 100).toFixed(3)}%`;

  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const back = ctx.hashFor('/traces', { service: serviceOf(trace, ordered[0][0]), lookback: '1h' });
  box.append(
    h(
      'div',
      { class: 'page-head' },
      h('p', { class: 'crumbs' }, h('a', { href: back }, '← Traces')),
      h('h1', null, sum.name, ' ', h('span', { class: 'tr-id' }, trace.traceID)),
      h(
        'dl',
        { class: 'trace-meta' },
        h('dt', null, 'Trace start'),
        h('dd', null, fmtDateTime(sum.start / 1e6)),
        h('dt', null, 'Duration'),
        h('dd', null, fmtMicros(sum.duration)),
        h('dt', null, 'Services'),
        h('dd', null, String(sum.services.size)),
        h('dt', null, 'Depth'),
        h('dd', null, String(depth)),
        h('dt', null, 'Total spans'),
        h('dd', null, String(sum.spans)),
        h('dt', null, 'Errors'),
        h('dd', { class: sum.errors ? 'text-error' : '' }, String(sum.errors)),
      ),
    ),
  );
  const header = h(
    'div',
    { class: 'wf-header', 'aria-hidden': 'true' },
    h('div', { class: 'wf-name' }, 'Service & operation'),
    h('div', { class: 'wf-timeline' }, ticks.map((t) => h('span', { class: 'wf-tick', style: `left:${t * 100}%` }, fmtMicros(total * t)))),
  );
  const list = h('div', { class: 'waterfall card', role: 'list', 'aria-label': 'Spans' }, header);
  for (const [sp, d] of ordered) {
    const service = serviceOf(trace, sp);
    const err = isErrorSpan(sp);
    const color = colorFor(service);
    const offset = sp.startTime - sum.start;
    const detail = h('div', { class: 'span-detail', hidden: true });
    const row = h(
      'div',
      {
        class: `span-row${err ? ' span-error' : ''}`,
        'data-testid': 'span-row',
        'data-span-id': sp.spanID,
        'data-error': err ? 'true' : 'false',
        role: 'button',
        tabindex: 0,
        'aria-expanded': 'false',
        'aria-label': `${service} ${sp.operationName}, ${fmtMicros(sp.duration)}${err ? ', error' : ''}`,
      },
      h(
        'div',
        { class: 'wf-name', style: `padding-left:${8 + d * 16}px` },
        h('span', { class: 'caret', 'aria-hidden': 'true' }, '▸'),
        err ? h('span', { class: 'err-icon', title: 'error' }, '!') : null,
        h('span', { class: 'svc', style: `border-left-color:${color}` }, service),
        ' ',
        h('span', { class: 'op', title: sp.operationName }, sp.operationName),
      ),
      h(
        'div',
        { class: 'wf-timeline' },
        ticks.slice(1, 4).map((t) => h('span', { class: 'wf-grid', style: `left:${t * 100}%` })),
        h('span', { class: 'wf-bar', style: `left:${pct(offset)};width:max(2px,${pct(sp.duration)});background:${color}` }),
        h('span', { class: 'wf-dur', style: offset / total > 0.7 ? `right:${pct(total - offset + total * 0.005)}` : `left:calc(${pct(offset + sp.duration)} + 4px)` }, fmtMicros(sp.duration)),
      ),
    );
    const toggle = () => {
      const open = detail.hidden;
      if (open && !detail.firstChild) {
        const process = (trace.processes || {})[sp.processID] || {};
        const parts = [
          h(
            'div',
            { class: 'span-facts' },
            h('span', null, h('strong', null, 'Service: '), service),
            h('span', null, h('strong', null, 'Start: '), fmtMicros(offset)),
            h('span', null, h('strong', null, 'Duration: '), fmtMicros(sp.duration)),
            h('span', null, h('strong', null, 'Span ID: '), h('code', null, sp.spanID)),
            parentOf(sp, ids) ? h('span', null, h('strong', null, 'Parent: '), h('code', null, parentOf(sp, ids))) : null,
          ),
          kvTable('Tags', (sp.tags || []).map((t) => [t.key, tagValue(t.value)])) || h('p', { class: 'muted' }, 'No tags.'),
          kvTable('Process', (process.tags || []).map((t) => [t.key, tagValue(t.value)])),
          (sp.logs || []).length
            ? kvTable(
                'Logs',
                sp.logs.map((l) => [fmtMicros(l.timestamp - sum.start), (l.fields || []).map((f) => `${f.key}=${tagValue(f.value)}`).join(' ')]),
              )
            : null,
        ];
        detail.append(...parts.filter(Boolean));
      }
      detail.hidden = !open;
      row.setAttribute('aria-expanded', String(open));
      row.classList.toggle('open', open);
    };
    row.addEventListener('click', toggle);
    row.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        toggle();
      }
    });
    list.append(h('div', { class: 'span-item', role: 'listitem' }, row, detail));
  }
  box.append(list);
}
