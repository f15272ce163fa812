// Router (hash based, so every query lives in the URL), polling, and the reconnect banner.
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { api, onConnection, NetworkError } from './api.js';
import { h, clear, errorBox, own } from './dom.js';
import * as graph from './graph.js';
import * as traces from './traces.js';
import * as metrics from './metrics.js';
import * as config from './config.js';
import * as traffic from './traffic.js';
import * as routes from './routes.js';
import * as tap from './tap.js';

const NAV = [
  ['graph', 'Graph', '#/graph'],
  ['traces', 'Traces', '#/traces'],
  ['services', 'Services', '#/services'],
  ['config', 'Config', '#/config'],
  ['traffic', 'Traffic', '#/traffic'],
  ['routes', 'Routes', '#/routes'],
];

// Which nav entry a route belongs to.
const SECTION = { '': 'graph', graph: 'graph', traces: 'traces', trace: 'traces', services: 'services', service: 'services', workload: 'services', tap: 'services', config: 'config', traffic: 'traffic', routes: 'routes' };

const ROUTES = {
  '': graph.render,
  graph: graph.render,
  traces: traces.renderSearch,
  trace: traces.renderTrace,
  services: metrics.renderList,
  service: (ctx) => metrics.renderPage(ctx, 'service'),
  workload: (ctx) => metrics.renderPage(ctx, 'workload'),
  config: config.render,
  traffic: traffic.render,
  routes: routes.render,
  tap: tap.render,
};

let main;
let banner;
let generation = 0;
let cleanups = [];

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/graph';
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  const segments = path.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  return { path, segments, query };
}

export function navigate(hash, { replace = false } = {}) {
  if (location.hash === hash) {
    render();
  } else if (replace) {
    history.replaceState(null, '', hash);
    render();
  } else {
    location.hash = hash;
  }
}

/** A hash from a path and a query object (empty values left out). */
export function hashFor(path, query) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  }
  const q = u.toString().replace(/\+/g, '%20');
  return `#${path}${q ? `?${q}` : ''}`;
}

// The element to give focus back to after a re-render of the same route.
function focusKey(el) {
  if (!el || el === document.body || !main.contains(el)) return null;
  if (el.id) return `#${CSS.escape(el.id)}`;
  const tid = el.getAttribute('data-testid');
  const did = el.getAttribute('data-id');
  if (tid && did) return `[data-testid="${CSS.escape(tid)}"][data-id="${CSS.escape(did)}"]`;
  return null;
}

function restoreFocus(key) {
  if (!key) return;
  const el = main.querySelector(key);
  if (el && document.activeElement !== el) el.focus({ preventScroll: true });
}

let lastPath = null;

function render() {
  const { path, segments, query } = parseHash();
  const [head = '', ...params] = segments;
  generation += 1;
  const token = generation;
  for (const fn of cleanups.splice(0)) fn();
  const samePath = path === lastPath;
  const key = samePath ? focusKey(document.activeElement) : null;
  lastPath = path;

  const section = own(SECTION, head);
  for (const a of document.querySelectorAll('.nav a')) {
    if (a.dataset.section === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }

  const ctx = {
    root: main,
    params,
    query,
    path,
    navigate,
    hashFor,
    alive: () => token === generation,
    onCleanup: (fn) => cleanups.push(fn),
    /** Runs fn every ms (after each run completes) while this page is shown and the control plane answers;
     * after errors (HTTP ones: a network failure waits for the banner's retry) it backs off, up to 60 s. */
    every(ms, fn) {
      let timer;
      let failures = 0;
      const tick = async () => {
        if (token !== generation) return;
        if (!reconnecting) {
          try {
            await fn();
            failures = 0;
          } catch (e) {
            if (!(e instanceof NetworkError)) {
              console.error(e);
              failures += 1;
            }
          }
        }
        if (token === generation) timer = setTimeout(tick, Math.min(ms * 2 ** Math.min(failures, 6), Math.max(ms, 60000)));
      };
      timer = setTimeout(tick, ms);
      cleanups.push(() => clearTimeout(timer));
    },
    /** Shows an error in place of el's content: a network failure waits for the banner's retry. */
    fail(el, e) {
      if (token !== generation) return;
      clear(el);
      if (e instanceof NetworkError) el.append(h('div', { class: 'empty' }, 'Waiting for the control plane…'));
      else el.append(errorBox(e.message || String(e)));
    },
    title(text) {
      document.title = text ? `${text} · weft` : 'weft';
    },
  };

  clear(main);
  const page = own(ROUTES, head);
  if (!page) {
    ctx.title('Not found');
    main.append(h('h1', null, 'Page not found'), h('p', null, 'No page at ', h('code', null, path), '. ', h('a', { href: '#/graph' }, 'Go to the graph')));
    return;
  }
  let result;
  try {
    result = page(ctx);
  } catch (e) {
    console.error(e);
    main.append(errorBox(String(e)));
  }
  restoreFocus(key);
  Promise.resolve(result)
    .catch((e) => {
      if (!(e instanceof NetworkError)) console.error(e);
    })
    .then(() => {
      if (token === generation) restoreFocus(key);
    });
  if (!samePath) window.scrollTo(0, 0);
}

// ---- reconnect banner -------------------------------------------------------------------

let reconnecting = false;
let loops = 0; // the running reconnect loop's number: a flap must not start a second one
let delay = 1000;
let recoveredAt = 0;

function setBanner(visible, detail) {
  banner.hidden = !visible;
  banner.querySelector('.banner-detail').textContent = detail || '';
}

async function reconnectLoop(id) {
  // Lost again soon after recovering (e.g. only some requests fail): keep backing off.
  delay = Date.now() - recoveredAt < 30000 ? Math.min(delay * 2, 16000) : 1000;
  while (reconnecting && id === loops) {
    for (let left = Math.ceil(delay / 1000); left > 0 && reconnecting && id === loops; left -= 1) {
      setBanner(true, `retrying in ${left} s`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    if (!reconnecting || id !== loops) return;
    setBanner(true, 'retrying now');
    try {
      await api.probe();
    } catch {
      /* the listener hides the banner on any HTTP answer */
    }
    if (reconnecting && id === loops) delay = Math.min(delay * 2, 16000);
  }
}

onConnection((ok) => {
  if (!ok && !reconnecting) {
    reconnecting = true;
    loops += 1;
    setBanner(true, '');
    reconnectLoop(loops);
  } else if (ok && reconnecting) {
    reconnecting = false;
    recoveredAt = Date.now();
    setBanner(false);
    render();
  }
});

// ---- boot -------------------------------------------------------------------------------

function boot() {
  const app = document.getElementById('app');
  const header = h(
    'header',
    { class: 'topbar' },
    h('a', { class: 'brand', href: '#/graph' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, '◇'), 'weft'),
    h('nav', { class: 'nav', 'aria-label': 'Main' }, NAV.map(([section, label, href]) => h('a', { href, 'data-section': section }, label))),
  );
  banner = h(
    'div',
    { class: 'banner', 'data-testid': 'connection-banner', role: 'status', 'aria-live': 'polite', hidden: true },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }),
    h('span', { class: 'banner-text' }, 'Reconnecting to the control plane…'),
    h('span', { class: 'banner-detail' }),
  );
  main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  clear(app).append(h('a', { class: 'skip', href: '#main', onclick: (e) => { e.preventDefault(); main.focus(); } }, 'Skip to content'), header, banner, main);
  window.addEventListener('hashchange', render);
  render();
}

boot();
