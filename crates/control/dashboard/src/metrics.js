// Service and workload pages (/api/mesh/metrics, one uPlot chart per panel) and the list of
// services and workloads.
import uPlot from 'uplot';
import { api } from './api.js';
import { h, clear, select, field, empty, fmtMs, fmtClock, showSource } from './dom.js';

const RANGES = [['5m', 'Last 5 minutes'], ['15m', 'Last 15 minutes'], ['30m', 'Last 30 minutes'], ['1h', 'Last hour']];
const PALETTE = ['#0066cc', '#009596', '#5752d1', '#4cb140', '#ec7a08', '#8f4700', '#f4c145', '#a18fff', '#6a6e73', '#003737'];
const REDS = ['#c9190b', '#a30000', '#f0a0a0', '#7d1007'];
const ORANGES = ['#ec7a08', '#f4b678', '#c46100'];

const enc = encodeURIComponent;
export const serviceHash = (ns, name) => `#/service/${enc(ns)}/${enc(name)}`;
export const workloadHash = (ns, name) => `#/workload/${enc(ns)}/${enc(name)}`;
const tracesHash = (ctx, service, ns) => ctx.hashFor('/traces', { service: `${service}.${ns}`, lookback: '1h', limit: 20 });

const BYTES = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
const isBytes = (unit) => unit === 'B' || unit === 'B/s';
const present = (v) => v !== null && v !== undefined;

/** Bytes with binary prefixes; fractions only below 10 B (TCP bytes per second can be 0.4 B/s). */
function fmtB(v) {
  let i = 0;
  while (Math.abs(v) >= 1024 && i < BYTES.length - 1) {
    v /= 1024;
    i += 1;
  }
  const digits = i ? (Math.abs(v) < 10 ? 2 : 1) : Math.abs(v) < 10 ? 1 : 0;
  return `${+v.toFixed(digits)} ${BYTES[i]}`;
}

/** A value with its unit (legend, cursor). */
function fmtValue(v, unit) {
  if (!present(v)) return '–';
  switch (unit) {
    case 'ms':
      return fmtMs(v);
    case 'B':
      return fmtB(v);
    case 'B/s':
      return `${fmtB(v)}/s`;
    case '%':
      return `${+v.toFixed(2)}%`;
    default: {
      const n = Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : +v.toFixed(3);
      return unit ? `${n} ${unit}` : String(n);
    }
  }
}

/** Decimals that show `step` exactly (at most 6): 0.25 → 2, 5 → 0. */
function decimalsFor(step) {
  let d = 0;
  while (d < 6 && Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) > 1e-6 * 10 ** d) d += 1;
  return d;
}

/** Compact tick labels without the unit (it is in the panel's title): 0, 2.5, 15, 1500, 12k. */
function compactTicks(splits, incr) {
  const max = Math.max(0, ...splits.filter(present).map(Math.abs));
  const [div, suffix] = max >= 1e10 ? [1e9, 'G'] : max >= 1e7 ? [1e6, 'M'] : max >= 1e4 ? [1e3, 'k'] : [1, '']; // at most 4 digits
  const d = decimalsFor(incr / div);
  return splits.map((v) => (!present(v) ? null : v === 0 ? '0' : `${+(v / div).toFixed(d)}${suffix}`));
}

/** Whole bytes, then multiples of powers of 1024 (512 B, 1 KiB, 1.5 KiB, …). */
const BYTE_INCRS = [0, 1, 2, 3, 4].flatMap((k) => [1, 2, 5, 10, 20, 50, 100, 256, 512].map((m) => m * 1024 ** k));

const byteTicks = (splits) => splits.map((v) => (!present(v) ? null : v === 0 ? '0' : fmtB(v)));

/** Sizes the y axis to its longest label (uPlot's axis-autosize recipe). */
function axisSize(u, values, axisIdx, cycleNum) {
  const axis = u.axes[axisIdx];
  if (cycleNum > 1) return axis._size; // force convergence
  let size = (axis.ticks.show ? axis.ticks.size : 0) + axis.gap + 8;
  const longest = (values || []).reduce((acc, v) => (v && v.length > acc.length ? v : acc), '');
  if (longest) {
    u.ctx.font = axis.font[0];
    size += u.ctx.measureText(longest).width / (window.devicePixelRatio || 1);
  }
  return Math.ceil(Math.max(size, 32));
}

function lastPresent(values) {
  for (let i = (values || []).length - 1; i >= 0; i -= 1) if (present(values[i])) return values[i];
  return null;
}

/** Indexes of samples with no neighbour: a line cannot draw them, only a point can. */
function isolated(values) {
  const out = [];
  for (let i = 0; i < values.length; i += 1) {
    if (present(values[i]) && !present(values[i - 1]) && !present(values[i + 1])) out.push(i);
  }
  return out;
}

/** Sparse: runs of samples between gaps are short on average (fewer than 3 samples). */
function sparse(values) {
  let n = 0;
  let runs = 0;
  for (let i = 0; i < values.length; i += 1) {
    if (!present(values[i])) continue;
    n += 1;
    if (!present(values[i - 1])) runs += 1;
  }
  return runs > 0 && n / runs < 3;
}

function colors(series) {
  let p = 0;
  let r = 0;
  let o = 0;
  return series.map((sr) => {
    const code = /\b([1-5])\d\d\b/.exec(sr.label || '');
    if (code && code[1] === '5') return REDS[r++ % REDS.length];
    if (code && code[1] === '4') return ORANGES[o++ % ORANGES.length];
    return PALETTE[p++ % PALETTE.length];
  });
}

function chartOptions(panel, width) {
  const cs = colors(panel.series);
  const unit = panel.unit;
  const flat = { zero: false }; // every sample is 0: one tick at 0 rather than 0, 0.2, … 1
  const range = (u, min, max) => {
    flat.zero = unit !== '%' && !(max > 0) && !(min < 0);
    if (unit === '%') return [Math.min(min ?? 100, 90), 100];
    if (flat.zero) return [0, 1];
    return [Math.min(0, min ?? 0), isBytes(unit) ? Math.max(1, max * 1.1) : max * 1.1];
  };
  const onlyZero = (u, splits) => (flat.zero ? splits.map((v) => (v === 0 ? v : null)) : splits);
  const yAxis = {
    stroke: '#6a6e73',
    grid: { stroke: '#eceef0', filter: onlyZero },
    ticks: { stroke: '#d2d2d2', filter: onlyZero },
    filter: onlyZero,
    size: axisSize,
    values: isBytes(unit) ? (u, splits) => byteTicks(splits) : (u, splits, axisIdx, space, incr) => compactTicks(splits, incr),
  };
  if (isBytes(unit)) yAxis.incrs = BYTE_INCRS;
  return {
    width,
    height: 200,
    scales: { x: { time: true }, y: { range } },
    axes: [{ stroke: '#6a6e73', grid: { stroke: '#eceef0' }, ticks: { stroke: '#d2d2d2' }, space: 70 }, yAxis],
    series: [
      // Off the chart the legend shows each series' latest value.
      { label: 'Time', value: (u, v, si, idx) => (idx === null || idx === undefined ? 'latest' : fmtClock(v)) },
      ...panel.series.map((sr, i) => ({
        label: sr.label,
        stroke: cs[i],
        width: 1.6,
        fill: panel.series.length === 1 ? `${cs[i]}18` : undefined,
        // Every point when the series is sparse, else only those without neighbours (which a
        // line leaves invisible).
        points: {
          size: 5,
          fill: cs[i],
          show: (u, si) => sparse(u.data[si]),
          filter: (u, si, show) => {
            if (show) return null;
            const idxs = isolated(u.data[si]);
            return idxs.length ? idxs : null;
          },
        },
        value: (u, v, si, idx) => fmtValue(idx === null || idx === undefined ? lastPresent(u.data[si]) : v, unit),
      })),
    ],
    legend: { live: true },
    cursor: { points: { size: 6 } },
  };
}

const hasData = (panel) => panel.series.some((sr) => sr.values.some((v) => v !== null && v !== undefined));

export function renderPage(ctx, kind) {
  const [ns = '', name = ''] = ctx.params;
  const q = ctx.query;
  const range = RANGES.some(([r]) => r === q.get('range')) ? q.get('range') : '15m';
  const direction = q.get('direction') === 'outbound' ? 'outbound' : 'inbound';
  ctx.title(`${name} (${kind})`);
  const base = `/${kind}/${enc(ns)}/${enc(name)}`;
  const go = (changes) => ctx.hashFor(base, { range: range === '15m' ? '' : range, direction: direction === 'inbound' ? '' : direction, ...changes });

  const links = h('div', { class: 'links' });
  const addLinks = (service) => {
    clear(links);
    if (service) links.append(h('a', { class: 'btn btn-small', href: tracesHash(ctx, service, ns) }, 'Traces'));
    if (kind === 'service') links.append(h('a', { class: 'btn btn-small', href: `#/traffic/${enc(ns)}/${enc(name)}` }, 'Traffic'));
    if (kind === 'workload') links.append(h('a', { class: 'btn btn-small', href: `#/tap/${enc(ns)}/${enc(name)}` }, 'Live requests'));
    if (kind === 'workload' && service) links.append(h('a', { class: 'btn btn-small', href: serviceHash(ns, service) }, `Service ${service}`));
    links.append(h('a', { class: 'btn btn-small', href: ctx.hashFor('/graph', { namespace: ns }) }, 'Graph'));
  };
  addLinks(kind === 'service' ? name : '');
  const info = h('p', { class: 'muted subtitle' });
  const source = h('span', { class: 'data-source muted', 'data-testid': 'metrics-source', hidden: true });

  const rangeSel = select({ id: 'metrics-range', onchange: (e) => ctx.navigate(go({ range: e.target.value === '15m' ? '' : e.target.value })) }, RANGES, range);
  const dirLink = (d, label) => h('a', { href: go({ direction: d === 'inbound' ? '' : d }), class: 'seg', 'aria-current': d === direction ? 'true' : null, 'data-direction': d }, label);
  const panelsEl = h('div', { class: 'panels' }, h('div', { class: 'empty' }, 'Loading metrics…'));

  ctx.root.append(
    h(
      'div',
      { class: 'page-head' },
      h('p', { class: 'crumbs' }, h('a', { href: '#/services' }, 'Services'), ' / ', ns),
      h('div', { class: 'title-row' }, h('h1', null, h('span', { class: 'kind-tag' }, kind === 'service' ? 'Service' : 'Workload'), ' ', name), links),
      info,
      h('div', { class: 'toolbar' }, field('Range', rangeSel), h('div', { class: 'segmented', role: 'group', 'aria-label': 'Direction' }, dirLink('inbound', 'Inbound'), dirLink('outbound', 'Outbound')), h('span', { class: 'hint', title: 'The legends show the latest values, or those under the cursor' }, 'Refreshes every 10 s · legends show the latest values'), source),
    ),
    panelsEl,
  );

  if (kind === 'workload') {
    api
      .services()
      .then((r) => {
        if (!ctx.alive()) return;
        const wl = (r.workloads || []).find((w) => w.namespace === ns && w.name === name);
        if (wl) {
          addLinks(wl.service);
          info.textContent = `Workload of service ${wl.service}${wl.version ? `, version ${wl.version}` : ''}`;
        }
      })
      .catch(() => {});
  }

  const charts = new Map(); // panel id -> {u, labels, card, body}
  const width = (el) => Math.max(280, el.clientWidth - 2);
  let shown = false;

  const load = async () => {
    let data;
    try {
      data = await api.metrics({ kind, namespace: ns, name, direction, range });
    } catch (e) {
      if (!shown) ctx.fail(panelsEl, e);
      throw e;
    }
    if (!ctx.alive()) return;
    if (!shown) clear(panelsEl);
    shown = true;
    showSource(source, data.source);
    const ids = new Set();
    for (const panel of data.panels || []) {
      ids.add(panel.id);
      let c = charts.get(panel.id);
      if (!c) {
        const body = h('div', { class: 'panel-body' });
        const card = h('section', { class: 'panel card', 'data-testid': 'panel', 'data-id': panel.id }, h('h2', null, panel.title, ' ', h('span', { class: 'unit' }, panel.unit)), body);
        panelsEl.append(card);
        c = { card, body, u: null, labels: '' };
        charts.set(panel.id, c);
      }
      const labels = panel.series.map((sr) => sr.label).join('\n');
      if (!panel.series.length || !hasData(panel)) {
        if (c.u) c.u.destroy();
        c.u = null;
        c.labels = '';
        clear(c.body).append(empty('No data in this range.'));
        continue;
      }
      const rows = [data.timestamps, ...panel.series.map((sr) => sr.values)];
      if (c.u && c.labels === labels) {
        c.u.setData(rows);
      } else {
        if (c.u) c.u.destroy();
        clear(c.body);
        c.u = new uPlot(chartOptions(panel, width(c.body)), rows, c.body);
        c.labels = labels;
      }
    }
    for (const [id, c] of charts) {
      if (!ids.has(id)) {
        if (c.u) c.u.destroy();
        c.card.remove();
        charts.delete(id);
      }
    }
    if (!charts.size) panelsEl.append(empty('No metrics for this ' + kind + '.'));
  };

  const onResize = () => {
    for (const c of charts.values()) if (c.u) c.u.setSize({ width: width(c.body), height: 200 });
  };
  window.addEventListener('resize', onResize);
  ctx.onCleanup(() => {
    window.removeEventListener('resize', onResize);
    for (const c of charts.values()) if (c.u) c.u.destroy();
  });
  ctx.every(10000, load);
  return load();
}

export function renderList(ctx) {
  ctx.title('Services');
  const box = h('div', null, h('div', { class: 'empty' }, 'Loading services…'));
  ctx.root.append(h('div', { class: 'page-head' }, h('h1', null, 'Services and workloads')), box);
  return api
    .services()
    .then((r) => {
      if (!ctx.alive()) return;
      clear(box);
      const services = [...(r.services || [])].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
      const workloads = [...(r.workloads || [])].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
      box.append(
        h('h2', null, 'Services'),
        services.length
          ? h(
              'table',
              { class: 'table' },
              h('thead', null, h('tr', null, ['Namespace', 'Service', 'Versions', 'Workloads', ''].map((t) => h('th', { scope: 'col' }, t)))),
              h(
                'tbody',
                null,
                services.map((sv) =>
                  h(
                    'tr',
                    { 'data-testid': 'service-row' },
                    h('td', null, sv.namespace),
                    h('td', null, h('a', { href: serviceHash(sv.namespace, sv.name) }, sv.name)),
                    h('td', null, (sv.versions || []).map((v) => h('span', { class: 'pill' }, v))),
                    h('td', null, (sv.workloads || []).map((w, i) => [i ? ', ' : '', h('a', { href: workloadHash(sv.namespace, w) }, w)])),
                    h('td', { class: 'actions' }, h('a', { href: tracesHash(ctx, sv.name, sv.namespace) }, 'Traces'), h('a', { href: `#/traffic/${enc(sv.namespace)}/${enc(sv.name)}` }, 'Traffic')),
                  ),
                ),
              ),
            )
          : empty('No services.'),
        h('h2', null, 'Workloads'),
        workloads.length
          ? h(
              'table',
              { class: 'table' },
              h('thead', null, h('tr', null, ['Namespace', 'Workload', 'Service', 'Version', ''].map((t) => h('th', { scope: 'col' }, t)))),
              h(
                'tbody',
                null,
                workloads.map((w) =>
                  h(
                    'tr',
                    { 'data-testid': 'workload-row' },
                    h('td', null, w.namespace),
                    h('td', null, h('a', { href: workloadHash(w.namespace, w.name) }, w.name)),
                    h('td', null, w.service ? h('a', { href: serviceHash(w.namespace, w.service) }, w.service) : '–'),
                    h('td', null, w.version || '–'),
                    h('td', { class: 'actions' }, h('a', { href: `#/tap/${enc(w.namespace)}/${enc(w.name)}` }, 'Live requests'), w.service ? h('a', { href: tracesHash(ctx, w.service, w.namespace) }, 'Traces') : null),
                  ),
                ),
              ),
            )
          : empty('No workloads.'),
      );
    })
    .catch((e) => ctx.fail(box, e));
}
