// Traffic: shift weights between subsets and inject faults, for a service with subsets.
import { api, ApiError, NetworkError, TimeoutError } from './api.js';
import { h, clear, empty, errorBox } from './dom.js';

const enc = encodeURIComponent;

function listPage(ctx) {
  ctx.title('Traffic');
  const box = h('div', null, h('div', { class: 'empty' }, 'Loading…'));
  ctx.root.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Traffic management'), h('p', { class: 'muted subtitle' }, 'Services whose DestinationRule defines subsets. Choose one to shift traffic between its subsets or inject faults.')),
    box,
  );
  return api
    .trafficList()
    .then((r) => {
      if (!ctx.alive()) return;
      const list = [...(r.services || [])].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.service.localeCompare(b.service));
      clear(box).append(
        list.length
          ? h(
              'table',
              { class: 'table' },
              h('thead', null, h('tr', null, ['Namespace', 'Service', 'Host', 'Subsets'].map((t) => h('th', { scope: 'col' }, t)))),
              h(
                'tbody',
                null,
                list.map((sv) =>
                  h(
                    'tr',
                    { 'data-testid': 'traffic-service' },
                    h('td', null, sv.namespace),
                    h('td', null, h('a', { href: `#/traffic/${enc(sv.namespace)}/${enc(sv.service)}` }, sv.service)),
                    h('td', null, h('code', null, sv.host)),
                    h('td', null, (sv.subsets || []).map((x) => h('span', { class: 'pill' }, x))),
                  ),
                ),
              ),
            )
          : empty('No service has subsets. Define subsets in a DestinationRule to shift traffic between them.'),
      );
    })
    .catch((e) => ctx.fail(box, e));
}

/** Even weights summing to 100 (the first subsets take the remainder). */
function evenWeights(subsets) {
  const n = subsets.length || 1;
  const base = Math.floor(100 / n);
  return Object.fromEntries(subsets.map((sub, i) => [sub, base + (i < 100 - base * n ? 1 : 0)]));
}

function numberOrRaw(text) {
  const t = String(text).trim();
  if (t === '') return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : t;
}

export function render(ctx) {
  const [ns, service] = ctx.params;
  if (!ns || !service) return listPage(ctx);
  ctx.title(`Traffic · ${service}`);

  const status = h('div', { class: 'traffic-status', 'data-testid': 'traffic-status', role: 'status', 'aria-live': 'polite' });
  const body = h('div', null, h('div', { class: 'empty' }, 'Loading…'));
  ctx.root.append(
    h(
      'div',
      { class: 'page-head' },
      h('p', { class: 'crumbs' }, h('a', { href: '#/traffic' }, 'Traffic'), ' / ', ns),
      h(
        'div',
        { class: 'title-row' },
        h('h1', null, h('span', { class: 'kind-tag' }, 'Service'), ' ', service),
        h('div', { class: 'links' }, h('a', { class: 'btn btn-small', href: `#/service/${enc(ns)}/${enc(service)}` }, 'Metrics'), h('a', { class: 'btn btn-small', href: ctx.hashFor('/graph', { namespace: ns }) }, 'Graph')),
      ),
    ),
    body,
  );

  return api
    .traffic(ns, service)
    .then((state) => {
      if (ctx.alive()) editor(ctx, body, status, state);
    })
    .catch((e) => {
      if (!ctx.alive()) return;
      if (e instanceof ApiError && e.status === 404) clear(body).append(errorBox(e.message), h('p', null, h('a', { href: '#/traffic' }, 'All services with subsets')));
      else ctx.fail(body, e);
    });
}

function editor(ctx, body, status, initial) {
  const { namespace: ns, service } = initial;
  const subsets = initial.subsets || [];
  const errorSlots = new Map(); // field path -> element
  const slot = (fieldPath) => {
    const el = h('div', { class: 'field-errors', 'data-for': fieldPath });
    errorSlots.set(fieldPath, el);
    return el;
  };

  const vsInfo = h('p', { class: 'muted subtitle' });
  const split = h('input', { type: 'checkbox', id: 'split-enabled', 'data-testid': 'split-enabled' });
  const weightInputs = new Map();
  const bars = h('div', { class: 'weight-bar', 'aria-hidden': 'true' });
  const sum = h('div', { class: 'weight-sum', 'data-testid': 'weight-sum', 'aria-live': 'polite' });
  const weightRows = subsets.map((sub) => {
    const input = h('input', { type: 'number', id: `weight-${sub}`, 'data-testid': `weight-${sub}`, min: 0, max: 100, step: 1, inputmode: 'numeric', 'aria-describedby': 'weight-sum' });
    weightInputs.set(sub, input);
    input.addEventListener('input', () => {
      split.checked = true;
      update();
    });
    return h('div', { class: 'weight-row' }, h('label', { for: `weight-${sub}`, class: 'weight-label' }, h('span', { class: 'pill' }, sub)), input, h('span', { class: 'unit' }, '%'), slot(`weights.${sub}`));
  });
  sum.id = 'weight-sum';

  const abortOn = h('input', { type: 'checkbox', id: 'abort-enabled', 'data-testid': 'abort-enabled' });
  const abortStatus = h('input', { type: 'number', id: 'abort-status', 'data-testid': 'abort-status', min: 200, max: 599, value: 500 });
  const abortPct = h('input', { type: 'number', id: 'abort-percentage', 'data-testid': 'abort-percentage', min: 0, max: 100, step: 'any', value: 100 });
  const delayOn = h('input', { type: 'checkbox', id: 'delay-enabled', 'data-testid': 'delay-enabled' });
  const delayFixed = h('input', { type: 'text', id: 'delay-fixed', 'data-testid': 'delay-fixed', value: '2s', placeholder: 'e.g. 2s or 500ms', autocomplete: 'off' });
  const delayPct = h('input', { type: 'number', id: 'delay-percentage', 'data-testid': 'delay-percentage', min: 0, max: 100, step: 'any', value: 100 });
  for (const [box, inputs] of [[abortOn, [abortStatus, abortPct]], [delayOn, [delayFixed, delayPct]]]) {
    for (const i of inputs) i.addEventListener('input', () => (box.checked = true));
    box.addEventListener('change', update);
  }

  const apply = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'apply' }, 'Apply');
  const reset = h('button', { type: 'button', class: 'btn btn-danger', 'data-testid': 'reset' }, 'Reset');
  const general = slot('');
  const fieldset = h(
    'fieldset',
    { class: 'traffic-fieldset' },
    h('legend', { class: 'sr-only' }, `Traffic of ${service}`),
    h(
      'section',
      { class: 'card' },
      h('h2', null, 'Traffic shifting'),
      h('label', { class: 'check' }, split, ' Split traffic by weight between subsets'),
      h('div', { class: 'weights' }, weightRows),
      bars,
      sum,
      slot('weights'),
    ),
    h(
      'section',
      { class: 'card' },
      h('h2', null, 'Fault injection'),
      h(
        'div',
        { class: 'fault' },
        h('label', { class: 'check' }, abortOn, ' Abort requests'),
        h('div', { class: 'fault-fields' }, h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'HTTP status'), abortStatus, slot('fault.abort.httpStatus')), h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Percentage of requests'), abortPct, slot('fault.abort.percentage'))),
        slot('fault.abort'),
      ),
      h(
        'div',
        { class: 'fault' },
        h('label', { class: 'check' }, delayOn, ' Delay requests'),
        h('div', { class: 'fault-fields' }, h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Fixed delay'), delayFixed, slot('fault.delay.fixedDelay')), h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Percentage of requests'), delayPct, slot('fault.delay.percentage'))),
        slot('fault.delay'),
      ),
      slot('fault'),
    ),
    h('div', { class: 'actions-row' }, apply, reset, h('span', { class: 'hint' }, 'Apply writes the VirtualService; Reset takes the split and the fault away (and deletes the VirtualService when nothing else is left in it).')),
    general,
  );
  const form = h('form', { class: 'traffic-form', novalidate: true }, fieldset);
  const reason = h('div');
  clear(body).append(vsInfo, reason, status, form);

  function update() {
    let total = 0;
    let ok = true;
    clear(bars);
    subsets.forEach((sub, i) => {
      const v = Number(weightInputs.get(sub).value);
      if (!Number.isFinite(v) || v < 0 || v > 100 || !Number.isInteger(v)) ok = false;
      total += Number.isFinite(v) ? v : 0;
      if (v > 0) bars.append(h('span', { class: `wb wb-${i % 6}`, style: `flex-grow:${v}`, title: `${sub} ${v}%` }, `${sub} ${v}%`));
    });
    if (!split.checked) {
      sum.className = 'weight-sum muted';
      sum.textContent = 'No split: requests go to every instance of the service.';
    } else if (total === 100 && ok) {
      sum.className = 'weight-sum ok-text';
      sum.textContent = `✓ Sum: ${total}%`;
    } else {
      sum.className = 'weight-sum text-error';
      sum.textContent = `✕ Sum: ${total}% — weights must be whole numbers from 0 to 100 that sum to 100`;
    }
    bars.hidden = !split.checked;
    for (const input of weightInputs.values()) input.closest('.weight-row').classList.toggle('off', !split.checked);
  }
  split.addEventListener('change', update);

  // The VirtualService's resourceVersion as loaded: a write made from a stale view is
  // refused (409) rather than overwriting changes made since.
  let loadedVersion = null;

  function fill(state) {
    loadedVersion = state.virtualService ? state.virtualService.resourceVersion : null;
    const w = state.weights || evenWeights(subsets);
    split.checked = !!state.weights;
    for (const [sub, input] of weightInputs) input.value = w[sub] ?? 0;
    const f = state.fault || {};
    abortOn.checked = !!f.abort;
    if (f.abort) {
      abortStatus.value = f.abort.httpStatus;
      abortPct.value = f.abort.percentage;
    }
    delayOn.checked = !!f.delay;
    if (f.delay) {
      delayFixed.value = f.delay.fixedDelay;
      delayPct.value = f.delay.percentage;
    }
    vsInfo.textContent = state.virtualService
      ? `Host ${state.host} · subsets ${subsets.join(', ')} · VirtualService ${state.virtualService.name} (resourceVersion ${state.virtualService.resourceVersion})`
      : `Host ${state.host} · subsets ${subsets.join(', ')} · no VirtualService: requests go to every instance`;
    clear(reason);
    fieldset.disabled = !state.editable;
    if (!state.editable) reason.append(h('div', { class: 'alert alert-warning', role: 'note', 'data-testid': 'not-editable' }, h('strong', null, 'Not editable here: '), state.reason || 'the dashboard cannot change this service.'));
    update();
  }

  function clearErrors() {
    for (const el of errorSlots.values()) clear(el);
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  }

  const INPUT_FOR = (fieldPath) => {
    if (fieldPath.startsWith('weights.')) return weightInputs.get(fieldPath.slice(8));
    return { 'fault.abort.httpStatus': abortStatus, 'fault.abort.percentage': abortPct, 'fault.delay.fixedDelay': delayFixed, 'fault.delay.percentage': delayPct }[fieldPath];
  };

  function showFieldErrors(errors) {
    for (const fe of errors) {
      const path = fe.field || '';
      // The closest slot: "weights.v2.x" → "weights.v2" → "weights" → general.
      let key = path;
      while (key && !errorSlots.has(key)) key = key.includes('.') ? key.slice(0, key.lastIndexOf('.')) : '';
      const el = errorSlots.get(key) || general;
      const input = INPUT_FOR(path);
      if (input) input.setAttribute('aria-invalid', 'true');
      el.append(h('div', { class: 'field-error', 'data-testid': 'field-error', 'data-field': path, role: 'alert' }, key === path ? '' : h('code', null, `${path}: `), fe.message));
    }
  }

  function payload() {
    const weights = split.checked ? Object.fromEntries(subsets.map((sub) => [sub, numberOrRaw(weightInputs.get(sub).value)])) : null;
    const abort = abortOn.checked ? { httpStatus: numberOrRaw(abortStatus.value), percentage: numberOrRaw(abortPct.value) } : null;
    const delay = delayOn.checked ? { fixedDelay: delayFixed.value.trim(), percentage: numberOrRaw(delayPct.value) } : null;
    return { weights, fault: abort || delay ? { abort, delay } : null, resourceVersion: loadedVersion };
  }

  function setStatus(kind, text) {
    status.className = `traffic-status status-${kind}`;
    status.setAttribute('data-state', kind);
    status.textContent = text;
  }

  async function send(what) {
    clearErrors();
    apply.disabled = true;
    reset.disabled = true;
    setStatus('pending', what === 'apply' ? 'Applying…' : 'Resetting…');
    try {
      const state = what === 'apply' ? await api.putTraffic(ns, service, payload()) : await api.resetTraffic(ns, service, loadedVersion);
      if (!ctx.alive()) return;
      fill(state);
      if (what === 'apply') {
        setStatus('ok', state.virtualService ? `Applied: VirtualService ${state.virtualService.name} (resourceVersion ${state.virtualService.resourceVersion})` : 'Applied: no VirtualService needed (no split, no fault)');
      } else {
        setStatus('ok', state.virtualService ? 'Reset: no split and no fault; the VirtualService keeps its other settings.' : 'Reset: the VirtualService was deleted; requests go to every instance.');
      }
    } catch (e) {
      if (!ctx.alive()) return;
      if (e instanceof ApiError) {
        const errs = (e.body && e.body.fieldErrors) || [];
        setStatus('error', `Not ${what === 'apply' ? 'applied' : 'reset'}: ${e.message}`);
        if (errs.length) showFieldErrors(errs);
      } else if (e instanceof TimeoutError) {
        setStatus('error', `No answer from the control plane: whether the ${what === 'apply' ? 'change was applied' : 'reset was done'} is unknown; reload the page to see the current state.`);
      } else if (e instanceof NetworkError) {
        setStatus('error', `Not ${what === 'apply' ? 'applied' : 'reset'}: the control plane cannot be reached.`);
      } else {
        setStatus('error', String(e));
      }
    } finally {
      apply.disabled = false;
      reset.disabled = false;
    }
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    send('apply');
  });
  reset.addEventListener('click', () => send('reset'));
  fill(initial);
  if (!subsets.length) form.prepend(empty('This service has no subsets, so there is nothing to split.'));
}
