// Routes: the Gateway API routes (HTTPRoute, GRPCRoute, TCPRoute, TLSRoute) as the traffic
// page shows VirtualServices: each route's parents and whether they accepted it (the status
// the control plane works out), its hostnames, and each rule's matches, filters, timeouts
// and backends with their share of the traffic.
import { api } from './api.js';
import { h, clear, empty } from './dom.js';

const enc = encodeURIComponent;
const keyOf = (r) => `${r.kind}/${r.namespace}/${r.name}`;

/** A parent's state: accepted (✓), refused (✕, with the reason), or no status from weft. */
function parentPill(p) {
  const label = `${p.kind === 'Gateway' ? '' : `${p.kind} `}${p.namespace}/${p.name}${p.sectionName ? `:${p.sectionName}` : ''}${p.port ? ` port ${p.port}` : ''}`;
  const a = p.accepted;
  const r = p.resolvedRefs;
  if (!a) return h('span', { class: 'pill', 'data-testid': 'route-parent', 'data-state': 'none', title: 'No condition from weft: the parent does not exist, or another controller serves it' }, `? ${label}`);
  const ok = a.status === 'True' && (!r || r.status === 'True');
  const why = a.status !== 'True' ? a.reason : r && r.status !== 'True' ? r.reason : 'Accepted';
  return h('span', { class: `pill ${ok ? 'pill-ok' : 'pill-error'}`, 'data-testid': 'route-parent', 'data-state': ok ? 'accepted' : 'refused', title: [a.message, r && r.message].filter(Boolean).join('; ') }, `${ok ? '✓' : '✕'} ${label}${ok ? '' : ` · ${why}`}`);
}

function backendsText(rule) {
  return (rule.backends || []).map((b) => `${b.name} ${b.percent}%`).join(' · ');
}

function listPage(ctx, data) {
  const routes = [...(data.routes || [])].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name) || a.kind.localeCompare(b.kind));
  return routes.length
    ? h(
        'table',
        { class: 'table' },
        h('thead', null, h('tr', null, ['Kind', 'Namespace', 'Name', 'Parents', 'Hostnames', 'Backends'].map((t) => h('th', { scope: 'col' }, t)))),
        h(
          'tbody',
          null,
          routes.map((r) =>
            h(
              'tr',
              { 'data-testid': 'route-row', 'data-kind': r.kind, 'data-namespace': r.namespace, 'data-name': r.name },
              h('td', null, h('span', { class: 'kind-tag' }, r.kind)),
              h('td', null, r.namespace),
              h('td', null, h('a', { href: `#/routes/${enc(r.kind)}/${enc(r.namespace)}/${enc(r.name)}` }, r.name)),
              h('td', null, (r.parents || []).map(parentPill)),
              h('td', null, (r.hostnames || []).length ? r.hostnames.map((n) => h('code', { class: 'pill' }, n)) : h('span', { class: 'muted' }, 'any')),
              h('td', null, (r.rules || []).map((rule) => h('div', null, backendsText(rule) || h('span', { class: 'muted' }, 'none')))),
            ),
          ),
        ),
      )
    : empty('No Gateway API routes. Apply an HTTPRoute, GRPCRoute, TCPRoute or TLSRoute with weft apply or kubectl.');
}

function ruleCard(rule, i) {
  const bar = h('div', { class: 'weight-bar', role: 'img', 'aria-label': `Backends of rule ${i + 1}: ${backendsText(rule)}` });
  (rule.backends || []).forEach((b, j) => {
    if (b.percent > 0) bar.append(h('span', { class: `wb wb-${j % 6}`, style: `flex-grow:${b.percent}`, title: `${b.name} ${b.percent}%` }, `${b.name} ${b.percent}%`));
  });
  return h(
    'section',
    { class: 'card', 'data-testid': 'route-rule' },
    h('h2', null, rule.name ? `Rule ${rule.name}` : `Rule ${i + 1}`),
    h('p', null, h('strong', null, 'Matches: '), (rule.matches || []).length ? rule.matches.map((m) => h('code', { class: 'pill' }, m)) : 'every request'),
    (rule.filters || []).length ? h('p', null, h('strong', null, 'Filters: '), rule.filters.map((f) => h('span', { class: 'pill' }, f))) : null,
    rule.timeouts ? h('p', null, h('strong', null, 'Timeouts: '), rule.timeouts) : null,
    (rule.backends || []).length ? bar : h('p', { class: 'muted' }, 'No backends: requests are answered 500.'),
    h(
      'table',
      { class: 'table' },
      h('thead', null, h('tr', null, ['Backend', 'Port', 'Weight', 'Share'].map((t) => h('th', { scope: 'col' }, t)))),
      h(
        'tbody',
        null,
        (rule.backends || []).map((b) =>
          h(
            'tr',
            { 'data-testid': 'route-backend', 'data-name': b.name, 'data-percent': b.percent },
            h('td', null, `${b.kind === 'Service' ? '' : `${b.kind} `}${b.namespace}/${b.name}`),
            h('td', null, b.port ?? ''),
            h('td', null, String(b.weight)),
            h('td', null, `${b.percent}%`),
          ),
        ),
      ),
    ),
  );
}

function detailPage(ctx, r) {
  const conditions = (p) =>
    ['accepted', 'resolvedRefs'].map((t) => {
      const c = p[t];
      return h('td', null, c ? h('span', { class: c.status === 'True' ? 'ok-text' : 'text-error', title: c.message || '' }, `${c.status === 'True' ? '✓' : '✕'} ${c.reason}`) : h('span', { class: 'muted' }, 'no status from weft'));
    });
  return h(
    'div',
    null,
    h('p', { class: 'muted subtitle' }, `${r.apiVersion} · resourceVersion ${r.resourceVersion} · hostnames: ${(r.hostnames || []).join(', ') || 'any'} · `, h('a', { href: ctx.hashFor('/config', { resource: keyOf(r) }) }, 'YAML and findings')),
    h(
      'section',
      { class: 'card' },
      h('h2', null, 'Parents'),
      h(
        'table',
        { class: 'table' },
        h('thead', null, h('tr', null, ['Parent', 'Accepted', 'Backends resolved', 'Why'].map((t) => h('th', { scope: 'col' }, t)))),
        h(
          'tbody',
          null,
          (r.parents || []).map((p) => h('tr', { 'data-testid': 'route-parent-row', 'data-name': p.name }, h('td', null, parentPill(p)), ...conditions(p), h('td', { class: 'muted' }, [p.accepted && p.accepted.message, p.resolvedRefs && p.resolvedRefs.status !== 'True' && p.resolvedRefs.message].filter(Boolean).join('; ')))),
        ),
      ),
    ),
    (r.rules || []).map(ruleCard),
  );
}

export function render(ctx) {
  const [kind, ns, name] = ctx.params;
  const detail = kind && ns && name;
  ctx.title(detail ? `Routes · ${name}` : 'Routes');
  const box = h('div', null, h('div', { class: 'empty' }, 'Loading…'));
  ctx.root.append(
    detail
      ? h('div', { class: 'page-head' }, h('p', { class: 'crumbs' }, h('a', { href: '#/routes' }, 'Routes'), ' / ', ns), h('div', { class: 'title-row' }, h('h1', null, h('span', { class: 'kind-tag' }, kind), ' ', name)))
      : h('div', { class: 'page-head' }, h('h1', null, 'Gateway API routes'), h('p', { class: 'muted subtitle' }, 'HTTPRoutes, GRPCRoutes, TCPRoutes and TLSRoutes: whether each parent (a Gateway, or a Service in the mesh) accepted them, and where their traffic goes.')),
    box,
  );
  return api
    .routes()
    .then((data) => {
      if (!ctx.alive()) return;
      if (!detail) return clear(box).append(listPage(ctx, data));
      const r = (data.routes || []).find((x) => x.kind === kind && x.namespace === ns && x.name === name);
      clear(box).append(r ? detailPage(ctx, r) : empty(`No ${kind} ${ns}/${name}.`));
    })
    .catch((e) => ctx.fail(box, e));
}
