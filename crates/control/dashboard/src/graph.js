// The mesh graph: /api/mesh/graph laid out by dagre (left to right, layered), drawn as SVG.
import { graphlib, layout } from '@dagrejs/dagre';
import { api } from './api.js';
import { h, s, clear, select, field, fmtRps, fmtPct, fmtMs, fmtClock, HEALTH, healthBadge, empty, showSource, own } from './dom.js';
import { flagView } from './flags.js';

const WINDOWS = ['10s', '30s', '1m', '5m', '10m', '30m', '1h'];
const LABELS = [['rps', 'Requests per second'], ['error', 'Error %'], ['p99', 'p99 latency']];
const KIND_LABEL = { gateway: 'Gateway', service: 'Service', workload: 'Workload', outside: 'Outside the mesh' };
/** The API's health, or idle for anything else (it names classes and the arrow marker's url(#…)). */
const healthOf = (x) => (own(HEALTH, x) ? x : 'idle');
const kindLabel = (kind) => own(KIND_LABEL, kind) || String(kind);
const MARKERS = [
  ['split', 'split', 'Traffic split by weight (VirtualService)'],
  ['fault', 'fault', 'Fault injection (VirtualService)'],
  ['circuitBreaker', 'cb', 'Circuit breaker: connection pool or outlier detection (DestinationRule)'],
];

// Zoom survives refreshes and re-renders: 'auto' (whole graph while readable), 'fit' (whole
// graph) or a scale.
let zoom = 'auto';

let measureCtx;
function textWidth(text, font) {
  if (!measureCtx) measureCtx = document.createElement('canvas').getContext('2d');
  measureCtx.font = font;
  return Math.ceil(measureCtx.measureText(text).width);
}
const FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
const FONT_BOLD = `600 ${FONT}`;

/** Jaeger's service name for a node ("name.namespace"), or null. */
export function traceService(node) {
  if (!node || node.kind === 'outside' || !node.namespace) return null;
  const svc = node.kind === 'service' ? node.name : node.service || node.name;
  return svc ? `${svc}.${node.namespace}` : null;
}

/** The metrics page of a node, or null. */
export function metricsHash(node) {
  if (!node || node.kind === 'outside' || !node.namespace) return null;
  const kind = node.kind === 'service' ? 'service' : 'workload';
  return `#/${kind}/${encodeURIComponent(node.namespace)}/${encodeURIComponent(node.name)}`;
}

function tracesHash(node, hashFor) {
  const svc = traceService(node);
  return svc ? hashFor('/traces', { service: svc, lookback: '1h', limit: 20 }) : null;
}

function edgeLabel(edge, which) {
  let text;
  if (which === 'error') text = fmtPct(edge.errorRate);
  else if (which === 'p99') text = edge.p99 === null || edge.p99 === undefined ? 'p99 –' : fmtMs(edge.p99);
  else text = fmtRps(edge.rps);
  return edge.mtls ? `${text} 🔒` : text;
}

function nodeSub(node) {
  if (node.kind === 'workload') return node.version && node.version !== 'unknown' ? `${node.version} · ${node.namespace}` : node.namespace;
  if (node.kind === 'gateway') return `gateway · ${node.namespace}`;
  if (node.kind === 'outside') return '';
  return node.namespace;
}

function activeMarkers(node) {
  const m = node.markers || {};
  return MARKERS.filter(([k]) => m[k]);
}

function shape(kind, health) {
  const cls = `shape shape-${health}`;
  const r = 17;
  switch (kind) {
    case 'gateway': {
      const pts = [];
      for (let i = 0; i < 6; i += 1) {
        const a = (Math.PI / 3) * i;
        pts.push(`${(r + 2) * Math.cos(a)},${(r + 2) * Math.sin(a)}`);
      }
      return s('polygon', { class: cls, points: pts.join(' ') });
    }
    case 'service':
      return s('polygon', { class: cls, points: `0,${-r - 2} ${r + 3},${r - 3} ${-r - 3},${r - 3}` });
    case 'outside':
      return s('rect', { class: `${cls} shape-outside`, x: -r, y: -r, width: 2 * r, height: 2 * r, rx: 8 });
    default:
      return s('circle', { class: cls, r });
  }
}

function kindGlyph(kind) {
  return { gateway: 'G', service: 'S', workload: 'W', outside: '?' }[kind] || '';
}

/** Lays out and draws the graph; returns the SVG and its natural size. */
function draw(data, opts) {
  const g = new graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: 'LR', nodesep: 24, ranksep: 56, edgesep: 14, marginx: 24, marginy: 24 });
  g.setDefaultEdgeLabel(() => ({}));

  const nodes = [...data.nodes].sort((a, b) => a.id.localeCompare(b.id));
  const byId = new Map(nodes.map((n) => [n.id, n]));
  for (const n of nodes) {
    const markers = activeMarkers(n);
    const markersW = markers.reduce((w, [, t]) => w + textWidth(t, '10px system-ui') + 14, 0);
    const w = Math.max(64, textWidth(n.name, FONT_BOLD) + 10, textWidth(nodeSub(n), FONT) + 10, markersW);
    g.setNode(n.id, { width: w, height: markers.length ? 92 : 74, node: n });
  }
  const edges = [...data.edges].filter((e) => byId.has(e.source) && byId.has(e.target)).sort((a, b) => a.id.localeCompare(b.id));
  for (const e of edges) {
    const label = edgeLabel(e, opts.label);
    g.setEdge(e.source, e.target, { width: textWidth(label, FONT) + 12, height: 18, labelpos: 'c', edge: e, label }, e.id);
  }
  layout(g);

  const gw = Math.max(g.graph().width || 0, 200);
  const gh = Math.max(g.graph().height || 0, 120);
  const defs = s(
    'defs',
    null,
    Object.keys(HEALTH).map((hl) =>
      s('marker', { id: `arrow-${hl}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 10, markerHeight: 10, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' }, s('path', { d: 'M0,0 L10,5 L0,10 z', class: `arrow arrow-${hl}` })),
    ),
  );

  // Keyboard order follows the layout: each node (left to right, top to bottom), then its
  // outgoing edges. Edges end at the nodes' boxes, so painting order does not matter.
  const edgeEls = new Map(); // source id -> [[y, el]]
  for (const ref of g.edges()) {
    const info = g.edge(ref);
    const e = info.edge;
    const pts = info.points || [];
    let d = '';
    if (pts.length) {
      d = `M${pts[0].x},${pts[0].y}`;
      for (let i = 1; i < pts.length - 1; i += 1) {
        const mx = (pts[i].x + pts[i + 1].x) / 2;
        const my = (pts[i].y + pts[i + 1].y) / 2;
        d += ` Q${pts[i].x},${pts[i].y} ${mx},${my}`;
      }
      const last = pts[pts.length - 1];
      d += ` L${last.x},${last.y}`;
    }
    const src = byId.get(e.source);
    const dst = byId.get(e.target);
    const health = healthOf(e.health);
    const aria = `${src.name} to ${dst.name}: ${fmtRps(e.rps)}, ${fmtPct(e.errorRate)} errors, p99 ${fmtMs(e.p99)}, ${HEALTH[health].label}${e.mtls ? ', mTLS' : ''}`;
    const lw = textWidth(info.label, FONT) + 12;
    const grp = s(
      'g',
      {
        class: `edge edge-${health}${opts.selected === e.id ? ' selected' : ''}`,
        'data-testid': 'edge',
        'data-id': e.id,
        'data-source': e.source,
        'data-target': e.target,
        'data-rps': e.rps,
        'data-error-rate': e.errorRate,
        'data-health': health,
        'data-mtls': e.mtls ? 'true' : 'false',
        tabindex: 0,
        role: 'button',
        'aria-label': aria,
      },
      s('title', null, aria),
      s('path', { class: 'edge-hit', d }),
      s('path', { class: 'edge-line', d, 'marker-end': `url(#arrow-${health})` }),
      s(
        'g',
        { class: 'edge-label', transform: `translate(${info.x},${info.y})` },
        s('rect', { x: -lw / 2, y: -9, width: lw, height: 18, rx: 4 }),
        s('text', { 'text-anchor': 'middle', dy: '0.35em' }, info.label),
      ),
    );
    const choose = () => opts.onEdge(e);
    grp.addEventListener('click', choose);
    grp.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        choose();
      }
    });
    if (!edgeEls.has(e.source)) edgeEls.set(e.source, []);
    edgeEls.get(e.source).push([g.node(e.target).y, grp]);
  }

  const layer = s('g', { class: 'layout' });
  const order = g.nodes().sort((a, b) => g.node(a).x - g.node(b).x || g.node(a).y - g.node(b).y);
  for (const id of order) {
    const info = g.node(id);
    const n = info.node;
    if (!n) continue;
    const health = healthOf(n.health);
    const hl = HEALTH[health];
    const top = -info.height / 2;
    const markers = activeMarkers(n);
    const children = [
      s('title', null, `${kindLabel(n.kind)} ${n.name} — ${hl.label}, ${fmtRps(n.rps)}, ${fmtPct(n.errorRate)} errors`),
      s('rect', { class: 'node-focus', x: -info.width / 2 - 4, y: top - 4, width: info.width + 8, height: info.height + 8, rx: 8 }),
      s('g', { transform: `translate(0,${top + 21})` }, shape(n.kind, health), s('text', { class: 'kind-glyph', 'text-anchor': 'middle', dy: '0.35em' }, kindGlyph(n.kind))),
      s('g', { class: `health-dot health-${health}`, transform: `translate(17,${top + 6})` }, s('circle', { r: 8 }), s('text', { 'text-anchor': 'middle', dy: '0.35em' }, hl.icon)),
      s('text', { class: 'node-name', 'text-anchor': 'middle', y: top + 56 }, n.name),
      s('text', { class: 'node-sub', 'text-anchor': 'middle', y: top + 70 }, nodeSub(n)),
    ];
    if (markers.length) {
      const widths = markers.map(([, t]) => textWidth(t, '10px system-ui') + 10);
      let x = -(widths.reduce((a, b) => a + b, 0) + 4 * (markers.length - 1)) / 2;
      markers.forEach(([key, text, title], i) => {
        children.push(
          s('g', { class: `marker marker-${key}`, transform: `translate(${x},${top + 76})` }, s('title', null, title), s('rect', { width: widths[i], height: 14, rx: 7 }), s('text', { x: widths[i] / 2, y: 10.5, 'text-anchor': 'middle' }, text)),
        );
        x += widths[i] + 4;
      });
    }
    const label = `${kindLabel(n.kind)} ${n.name}${n.namespace ? ` in ${n.namespace}` : ''}: ${hl.label}, ${fmtRps(n.rps)}, ${fmtPct(n.errorRate)} errors${markers.length ? `, ${markers.map((m) => m[1]).join(', ')}` : ''}`;
    const grp = s(
      'g',
      {
        class: `node node-${n.kind} node-${health}${opts.selected === n.id ? ' selected' : ''}`,
        'data-testid': 'node',
        'data-id': n.id,
        'data-kind': n.kind,
        'data-namespace': n.namespace,
        'data-name': n.name,
        'data-service': n.service || '',
        'data-version': n.version || '',
        'data-health': health,
        'data-rps': n.rps,
        'data-error-rate': n.errorRate,
        transform: `translate(${info.x},${info.y})`,
        tabindex: 0,
        role: metricsHash(n) ? 'link' : 'button',
        'aria-label': label,
      },
      children,
    );
    const open = () => {
      const href = metricsHash(n);
      if (href) location.hash = href.slice(1);
      else opts.onNode(n, true);
    };
    grp.addEventListener('click', open);
    grp.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') {
        ev.preventDefault();
        open();
      } else if (ev.key === ' ') {
        ev.preventDefault();
        opts.onNode(n, true);
      }
    });
    grp.addEventListener('focus', () => opts.onNode(n, false));
    grp.addEventListener('mouseenter', () => opts.onNode(n, false));
    layer.append(grp);
    for (const [, el] of (edgeEls.get(id) || []).sort((a, b) => a[0] - b[0])) layer.append(el);
  }

  const svg = s('svg', { class: 'graph-svg', viewBox: `0 0 ${gw} ${gh}`, role: 'group', 'aria-label': 'Mesh graph' }, defs, layer);
  return { svg, gw, gh };
}

function legend() {
  const item = (svgChild, text) => h('li', null, s('svg', { width: 26, height: 26, viewBox: '-13 -13 26 26', 'aria-hidden': 'true' }, svgChild), h('span', null, text));
  const line = (health, text) =>
    h('li', null, s('svg', { width: 34, height: 12, viewBox: '0 0 34 12', 'aria-hidden': 'true' }, s('line', { class: `edge-line legend-${health}`, x1: 1, y1: 6, x2: 33, y2: 6 })), h('span', null, text));
  return h(
    'section',
    { class: 'legend', 'aria-label': 'Legend' },
    h('h2', null, 'Legend'),
    h('h3', null, 'Health'),
    h(
      'ul',
      { class: 'legend-health' },
      h('li', null, healthBadge('healthy'), h('span', null, 'error rate below 0.1%')),
      h('li', null, healthBadge('degraded'), h('span', null, 'error rate 0.1% or more')),
      h('li', null, healthBadge('failing'), h('span', null, 'error rate 20% or more')),
      h('li', null, healthBadge('idle'), h('span', null, 'no requests in the window')),
    ),
    h('p', { class: 'hint' }, 'Errors are 5xx answers and connection failures.'),
    h('h3', null, 'Nodes'),
    h(
      'ul',
      { class: 'legend-shapes' },
      item(s('g', { transform: 'scale(0.6)' }, shape('gateway', 'healthy')), 'gateway'),
      item(s('g', { transform: 'scale(0.6)' }, shape('service', 'healthy')), 'service'),
      item(s('g', { transform: 'scale(0.6)' }, shape('workload', 'healthy')), 'workload'),
      item(s('g', { transform: 'scale(0.6)' }, shape('outside', 'idle')), 'outside the mesh'),
    ),
    h('h3', null, 'Edges'),
    h('ul', { class: 'legend-edges' }, line('healthy', 'healthy'), line('degraded', 'degraded (dashed)'), line('failing', 'failing (thick)'), line('idle', 'idle (dotted)'), h('li', null, h('span', { class: 'legend-glyph' }, '🔒'), h('span', null, 'mutual TLS'))),
    h('h3', null, 'Service markers'),
    h(
      'ul',
      { class: 'legend-markers' },
      MARKERS.map(([key, text, title]) => h('li', null, h('span', { class: `pill marker-${key}` }, text), h('span', null, title))),
    ),
  );
}

function details(sel, data, hashFor) {
  if (!sel) return h('section', { class: 'details' }, h('h2', null, 'Details'), h('p', { class: 'hint' }, 'Hover or focus a node, or select an edge, to see its numbers. Click a node (or press Enter) to open its metrics.'));
  const byId = new Map(data.nodes.map((n) => [n.id, n]));
  const links = [];
  const link = (href, text) => href && links.push(h('a', { class: 'btn btn-small', href }, text));
  if (sel.type === 'node') {
    const n = byId.get(sel.id);
    if (!n) return details(null, data, hashFor);
    link(metricsHash(n), 'Metrics');
    link(tracesHash(n, hashFor), 'Traces');
    if (n.kind === 'service') link(`#/traffic/${encodeURIComponent(n.namespace)}/${encodeURIComponent(n.name)}`, 'Traffic');
    if (n.kind === 'workload' || n.kind === 'gateway') link(`#/tap/${encodeURIComponent(n.namespace)}/${encodeURIComponent(n.name)}`, 'Live requests');
    const markers = activeMarkers(n);
    return h(
      'section',
      { class: 'details' },
      h('h2', null, h('span', { class: 'kind-tag' }, kindLabel(n.kind)), ' ', n.name),
      h(
        'dl',
        { class: 'kv' },
        n.namespace ? [h('dt', null, 'Namespace'), h('dd', null, n.namespace)] : null,
        n.kind === 'workload' ? [h('dt', null, 'Service'), h('dd', null, n.service || '–'), h('dt', null, 'Version'), h('dd', null, n.version || '–')] : null,
        h('dt', null, 'Health'),
        h('dd', null, healthBadge(n.health)),
        h('dt', null, 'Requests'),
        h('dd', null, fmtRps(n.rps)),
        h('dt', null, 'Errors'),
        h('dd', null, fmtPct(n.errorRate)),
        markers.length ? [h('dt', null, 'Markers'), h('dd', null, markers.map(([key, text, title]) => h('div', null, h('span', { class: `pill marker-${key}` }, text), ' ', title)))] : null,
      ),
      h('div', { class: 'links' }, links),
    );
  }
  const e = data.edges.find((x) => x.id === sel.id);
  if (!e) return details(null, data, hashFor);
  const src = byId.get(e.source) || { name: e.source };
  const dst = byId.get(e.target) || { name: e.target };
  link(metricsHash(dst), `${dst.name} metrics`);
  link(tracesHash(dst, hashFor), `${dst.name} traces`);
  const flags = Object.entries(e.flags || {}).filter(([, v]) => v > 0);
  return h(
    'section',
    { class: 'details' },
    h('h2', null, h('span', { class: 'kind-tag' }, 'Edge'), ' ', src.name, ' → ', dst.name),
    h(
      'dl',
      { class: 'kv' },
      h('dt', null, 'Health'),
      h('dd', null, healthBadge(e.health)),
      h('dt', null, 'Protocol'),
      h('dd', null, e.protocol || '–'),
      h('dt', null, 'mTLS'),
      h('dd', null, e.mtls ? '🔒 yes' : 'no'),
      h('dt', null, 'Requests'),
      h('dd', null, fmtRps(e.rps)),
      h('dt', null, 'Errors'),
      h('dd', null, fmtPct(e.errorRate)),
      h('dt', null, 'Latency'),
      h('dd', null, `p50 ${fmtMs(e.p50)} · p90 ${fmtMs(e.p90)} · p99 ${fmtMs(e.p99)}`),
      flags.length ? [h('dt', null, 'Flags'), h('dd', null, h('ul', { class: 'flag-list' }, flags.map(([f, v]) => h('li', null, h('strong', null, fmtPct(v)), ' ', flagView(f)))))] : null,
    ),
    h('div', { class: 'links' }, links),
  );
}

export function render(ctx) {
  const q = ctx.query;
  const win = WINDOWS.includes(q.get('window')) ? q.get('window') : '1m';
  const namespace = q.get('namespace') || '';
  const label = LABELS.some(([v]) => v === q.get('label')) ? q.get('label') : 'rps';
  ctx.title('Graph');

  const go = (changes) => ctx.navigate(ctx.hashFor('/graph', { window: win, namespace, label: label === 'rps' ? '' : label, ...changes }));
  const nsSelect = select({ id: 'graph-namespace', onchange: (e) => go({ namespace: e.target.value }) }, [['', 'All namespaces'], ...(namespace ? [namespace] : [])], namespace);
  const winSelect = select({ id: 'graph-window', onchange: (e) => go({ window: e.target.value }) }, WINDOWS.map((w) => [w, `Last ${w}`]), win);
  const labelSelect = select({ id: 'graph-label', onchange: (e) => go({ label: e.target.value === 'rps' ? '' : e.target.value }) }, LABELS, label);
  const updated = h('span', { class: 'updated muted', 'aria-live': 'off' });
  const source = h('span', { class: 'data-source muted', 'data-testid': 'graph-source', hidden: true });
  const canvas = h('div', { class: 'graph-canvas', tabindex: '-1' });
  const side = h('aside', { class: 'graph-side' });
  const zoomLabel = h('span', { class: 'zoom-label muted' });

  let data = null;
  let selected = null; // {type, id}
  let sticky = false; // a click selected it: hover does not replace it
  let natural = null;

  const applyZoom = () => {
    if (!natural) return;
    const { svg, gw, gh } = natural;
    let scale = zoom;
    if (zoom === 'auto' || zoom === 'fit') {
      const cw = Math.max(canvas.clientWidth - 2, 200);
      const ch = Math.max(canvas.clientHeight - 2, 200);
      scale = Math.min(1.25, cw / gw, ch / gh);
      // Auto: the whole graph while it stays readable, else fit the width, else scroll.
      if (zoom === 'auto' && scale < 0.75) scale = Math.max(Math.min(1.25, cw / gw), 0.75);
    }
    svg.setAttribute('width', Math.round(gw * scale));
    svg.setAttribute('height', Math.round(gh * scale));
    zoomLabel.textContent = `${Math.round(scale * 100)}%`;
  };
  const setZoom = (z) => {
    if (z !== 'fit' && z !== 'auto') {
      const cur = typeof zoom !== 'number' ? Number(natural?.svg.getAttribute('width')) / (natural?.gw || 1) || 1 : zoom;
      z = Math.min(3, Math.max(0.2, z === 'in' ? cur * 1.25 : z === 'out' ? cur / 1.25 : z));
    }
    zoom = z;
    applyZoom();
  };

  const showSide = () => {
    clear(side).append(details(selected, data, ctx.hashFor), legend());
  };
  const onNode = (n, stick) => {
    if (sticky && !stick) return;
    sticky = stick;
    selected = { type: 'node', id: n.id };
    showSide();
  };
  const onEdge = (e) => {
    sticky = true;
    selected = { type: 'edge', id: e.id };
    for (const el of canvas.querySelectorAll('.selected')) el.classList.remove('selected');
    const el = canvas.querySelector(`[data-testid="edge"][data-id="${CSS.escape(e.id)}"]`);
    if (el) el.classList.add('selected');
    showSide();
  };

  const paint = () => {
    const focused = document.activeElement && canvas.contains(document.activeElement) ? document.activeElement : null;
    const focusSel = focused && focused.getAttribute('data-id') ? `[data-testid="${CSS.escape(focused.getAttribute('data-testid') || '')}"][data-id="${CSS.escape(focused.getAttribute('data-id'))}"]` : null;
    const scroll = [canvas.scrollLeft, canvas.scrollTop];
    clear(canvas);
    if (!data.nodes.length) {
      natural = null;
      canvas.append(empty(`No requests seen in the last ${data.window || win}${namespace ? ` in namespace ${namespace}` : ''}. Send some traffic or choose a longer window.`));
    } else {
      natural = draw(data, { label, selected: selected && selected.id, onNode, onEdge });
      canvas.append(natural.svg);
      applyZoom();
      [canvas.scrollLeft, canvas.scrollTop] = scroll;
      if (focusSel) {
        const el = canvas.querySelector(focusSel);
        if (el) el.focus({ preventScroll: true });
      }
    }
    showSide();
  };

  const load = async () => {
    let next;
    try {
      next = await api.graph({ window: win, namespace });
    } catch (e) {
      if (!ctx.alive()) return;
      if (!data) ctx.fail(canvas, e);
      throw e;
    }
    if (!ctx.alive()) return;
    data = next;
    // The namespace list comes with the data.
    const names = ['', ...new Set([...(data.namespaces || []), ...(namespace ? [namespace] : [])])];
    const have = [...nsSelect.options].map((o) => o.value);
    if (names.join('\n') !== have.join('\n')) {
      clear(nsSelect).append(...names.map((n) => h('option', { value: n, selected: n === namespace }, n || 'All namespaces')));
    }
    updated.textContent = `Updated ${fmtClock(data.generatedAt || Date.now() / 1000)}`;
    showSource(source, typeof data.source === 'string' ? data.source : '');
    paint();
  };

  const onResize = () => typeof zoom !== 'number' && applyZoom();
  window.addEventListener('resize', onResize);
  ctx.onCleanup(() => window.removeEventListener('resize', onResize));

  ctx.root.append(
    h(
      'div',
      { class: 'page-head' },
      h('h1', null, 'Mesh graph'),
      h(
        'div',
        { class: 'toolbar' },
        field('Namespace', nsSelect),
        field('Window', winSelect),
        field('Edge labels', labelSelect),
        h(
          'div',
          { class: 'zoom', role: 'group', 'aria-label': 'Zoom' },
          h('button', { type: 'button', class: 'btn btn-small', 'aria-label': 'Zoom out', onclick: () => setZoom('out') }, '−'),
          h('button', { type: 'button', class: 'btn btn-small', title: 'Show the whole graph', onclick: () => setZoom('fit') }, 'Fit'),
          h('button', { type: 'button', class: 'btn btn-small', title: 'Actual size', onclick: () => setZoom(1) }, '1:1'),
          h('button', { type: 'button', class: 'btn btn-small', 'aria-label': 'Zoom in', onclick: () => setZoom('in') }, '+'),
          zoomLabel,
        ),
        updated,
        source,
      ),
    ),
    h('div', { class: 'graph-layout' }, canvas, side),
  );
  canvas.append(h('div', { class: 'empty' }, 'Loading the graph…'));
  showSide();
  ctx.every(5000, load);
  return load();
}
