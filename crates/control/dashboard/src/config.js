// Config: every resource the control plane holds, its YAML with the analyzer's findings at
// their lines, and the proxies' sync state (like `weft proxy-status`).
import { api } from './api.js';
import { h, clear, empty, field, own } from './dom.js';

const keyOf = (r) => `${r.kind}/${r.namespace}/${r.name}`;
const LEVEL_ORDER = { Error: 0, Warning: 1, Info: 2 };

function levelBadge(level) {
  const cls = own({ Error: 'level-error', Warning: 'level-warning', Info: 'level-info' }, level) || 'level-info';
  const icon = own({ Error: '✕', Warning: '!', Info: 'i' }, level) || 'i';
  return h('span', { class: `level ${cls}` }, h('span', { 'aria-hidden': 'true' }, icon), ` ${level}`);
}

function countBadge(findings) {
  if (!findings.length) return h('span', { class: 'muted' }, '0');
  const worst = [...findings].sort((a, b) => (own(LEVEL_ORDER, a.level) ?? 9) - (own(LEVEL_ORDER, b.level) ?? 9))[0].level;
  const cls = worst === 'Error' ? 'pill-error' : worst === 'Warning' ? 'pill-warning' : '';
  return h('span', { class: `pill ${cls}`, title: `${findings.length} finding(s), worst: ${worst}` }, `${findings.length} · ${worst}`);
}

function yamlView(resource) {
  const lines = (resource.yaml || '').replace(/\n$/, '').split('\n');
  const byLine = new Map();
  for (const f of resource.findings || []) {
    if (Number.isInteger(f.line) && f.line >= 1 && f.line <= lines.length) {
      if (!byLine.has(f.line)) byLine.set(f.line, []);
      byLine.get(f.line).push(f);
    }
  }
  const rows = [];
  lines.forEach((text, i) => {
    const n = i + 1;
    const fs = byLine.get(n);
    const worst = fs ? fs.map((f) => f.level).sort((a, b) => (own(LEVEL_ORDER, a) ?? 9) - (own(LEVEL_ORDER, b) ?? 9))[0] : null;
    rows.push(
      h(
        'tr',
        { id: `yaml-line-${n}`, class: fs ? `marked marked-${String(worst).toLowerCase()}` : null },
        h('td', { class: 'ln' }, String(n)),
        h('td', { class: 'code' }, h('code', null, text || ' ')),
      ),
    );
    for (const f of fs || []) {
      rows.push(
        h(
          'tr',
          { class: `yaml-finding level-row-${String(f.level).toLowerCase()}` },
          h('td', { class: 'ln' }),
          h('td', null, h('span', { class: 'yaml-finding-box' }, levelBadge(f.level), ' ', h('code', null, f.code), ' ', f.message)),
        ),
      );
    }
  });
  return h('div', { class: 'yaml-wrap' }, h('table', { class: 'yaml', 'aria-label': `YAML of ${resource.kind} ${resource.name}` }, h('tbody', null, rows)));
}

function findingsTable(resource) {
  const fs = [...(resource.findings || [])].sort((a, b) => (a.line ?? 1e9) - (b.line ?? 1e9));
  if (!fs.length) return h('p', { class: 'ok-text' }, '✓ No findings for this resource.');
  return h(
    'table',
    { class: 'table findings' },
    h('caption', null, 'Findings'),
    h('thead', null, h('tr', null, ['Code', 'Level', 'Message', 'Line'].map((t) => h('th', { scope: 'col' }, t)))),
    h(
      'tbody',
      null,
      fs.map((f) =>
        h(
          'tr',
          { 'data-testid': 'finding', 'data-code': f.code, 'data-level': f.level, 'data-line': f.line ?? '' },
          h('td', null, h('code', null, f.code)),
          h('td', null, levelBadge(f.level)),
          h('td', null, f.message),
          h(
            'td',
            null,
            f.line
              ? h(
                  'button',
                  {
                    type: 'button',
                    class: 'linklike',
                    onclick: () => {
                      const row = document.getElementById(`yaml-line-${f.line}`);
                      if (row) {
                        row.scrollIntoView({ block: 'center' });
                        row.classList.add('flash');
                        setTimeout(() => row.classList.remove('flash'), 1200);
                      }
                    },
                  },
                  `line ${f.line}`,
                )
              : '–',
          ),
        ),
      ),
    ),
  );
}

function proxiesTable(proxies, version) {
  if (!proxies.length) return empty('No proxy is connected to the control plane.');
  return h(
    'table',
    { class: 'table' },
    h('thead', null, h('tr', null, ['Proxy', 'Namespace', 'Connected since', 'Acked version', 'Pushes', 'Synced', 'Last NACK'].map((t) => h('th', { scope: 'col' }, t)))),
    h(
      'tbody',
      null,
      [...proxies]
        .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.id.localeCompare(b.id))
        .map((p) =>
          h(
            'tr',
            { 'data-testid': 'proxy-row', 'data-id': p.id, 'data-synced': p.synced ? 'true' : 'false' },
            h('td', null, p.id),
            h('td', null, p.namespace),
            h('td', null, p.connectedSince || '–'),
            h('td', null, p.ackedVersion ?? '–', version !== undefined && String(p.ackedVersion) !== String(version) ? h('span', { class: 'muted' }, ` (current ${version})`) : null),
            h('td', null, String(p.pushes ?? '–')),
            h('td', null, p.synced ? h('span', { class: 'ok-text' }, '✓ yes') : h('span', { class: 'text-error' }, '✕ no')),
            h('td', { class: p.lastNack ? 'text-error' : 'muted' }, p.lastNack || '–'),
          ),
        ),
    ),
  );
}

export function render(ctx) {
  ctx.title('Config');
  const selectedKey = ctx.query.get('resource') || '';
  const filterText = ctx.query.get('filter') || '';
  const summary = h('p', { class: 'muted subtitle' });
  const list = h('div', { class: 'config-list' });
  const detail = h('div', { class: 'config-detail' });
  const proxies = h('div');
  const filter = h('input', { id: 'config-filter', type: 'search', value: filterText, placeholder: 'kind, namespace or name', autocomplete: 'off' });
  ctx.root.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Configuration'), summary),
    h('div', { class: 'config-layout' }, h('section', { class: 'card', 'aria-label': 'Resources' }, h('div', { class: 'toolbar' }, field('Filter', filter)), list), h('section', { class: 'card', 'aria-label': 'Selected resource' }, detail)),
    h('h2', null, 'Proxies'),
    h('p', { class: 'hint' }, 'Each proxy\u2019s configuration sync, as ', h('code', null, 'weft proxy-status'), ' shows it.'),
    proxies,
  );
  list.append(h('div', { class: 'empty' }, 'Loading…'));

  let data = null;
  let last = '';

  const drawList = () => {
    const term = filter.value.trim().toLowerCase();
    const resources = [...data.resources]
      .filter((r) => !term || keyOf(r).toLowerCase().includes(term))
      .sort((a, b) => a.kind.localeCompare(b.kind) || a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
    clear(list).append(
      resources.length
        ? h(
            'table',
            { class: 'table resources' },
            h('thead', null, h('tr', null, ['Kind', 'Namespace', 'Name', 'Version', 'Findings'].map((t) => h('th', { scope: 'col' }, t)))),
            h(
              'tbody',
              null,
              resources.map((r) =>
                h(
                  'tr',
                  { 'data-testid': 'resource-row', 'data-kind': r.kind, 'data-namespace': r.namespace, 'data-name': r.name, 'data-findings': (r.findings || []).length, class: keyOf(r) === selectedKey ? 'selected' : null },
                  h('td', null, r.kind),
                  h('td', null, r.namespace),
                  h('td', null, h('a', { href: ctx.hashFor('/config', { resource: keyOf(r), filter: filter.value.trim() }), 'aria-current': keyOf(r) === selectedKey ? 'true' : null }, r.name)),
                  h('td', null, r.resourceVersion),
                  h('td', null, countBadge(r.findings || [])),
                ),
              ),
            ),
          )
        : empty(term ? 'No resource matches the filter.' : 'No resources.'),
    );
  };
  filter.addEventListener('input', drawList);

  const drawDetail = () => {
    clear(detail);
    const r = data.resources.find((x) => keyOf(x) === selectedKey);
    if (!r) {
      detail.append(empty(selectedKey ? `No resource ${selectedKey}.` : 'Select a resource to see its YAML and findings.'));
      return;
    }
    detail.append(
      h('h2', null, h('span', { class: 'kind-tag' }, r.kind), ' ', r.namespace, '/', r.name),
      h('p', { class: 'muted' }, `${r.apiVersion} · resourceVersion ${r.resourceVersion}`),
      findingsTable(r),
      yamlView(r),
    );
  };

  const load = async () => {
    let next;
    try {
      next = await api.config();
    } catch (e) {
      if (!data) ctx.fail(list, e);
      throw e;
    }
    if (!ctx.alive()) return;
    const text = JSON.stringify(next);
    if (text === last) return;
    last = text;
    data = { ...next, resources: next.resources || [], proxies: next.proxies || [] };
    const all = data.resources.flatMap((r) => r.findings || []);
    const errors = all.filter((f) => f.level === 'Error').length;
    const warnings = all.filter((f) => f.level === 'Warning').length;
    summary.textContent = `Configuration version ${data.version} · ${data.resources.length} resources · ${errors} errors · ${warnings} warnings · ${data.proxies.length} proxies`;
    drawList();
    drawDetail();
    clear(proxies).append(proxiesTable(data.proxies, data.version));
  };
  ctx.every(10000, load);
  return load();
}
