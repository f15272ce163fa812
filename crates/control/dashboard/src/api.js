// The dashboard's JSON API (see ../API.md). Every call goes through request(): an HTTP
// error becomes an ApiError with the server's message; a network failure (control plane
// restarting) becomes a NetworkError and is reported to the connection listener, which
// shows the reconnect banner and retries with backoff.

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export class NetworkError extends Error {}

/** No answer in time: for a write, whether it was applied is unknown. */
export class TimeoutError extends NetworkError {}

// A control plane that accepts the connection but never answers must not leave the page
// waiting for ever (polling stops while a request is pending).
const TIMEOUT_MS = 30000;

let listener = () => {};
let online = true;

/** Called with false when a request fails at the network level, true when one succeeds again. */
export function onConnection(fn) {
  listener = fn;
}

export function isOnline() {
  return online;
}

function setOnline(value) {
  if (online !== value) {
    online = value;
    listener(value);
  }
}

/** The message of an error body: `{"message"}` or Jaeger's `{"errors": [{"msg"}]}`. */
function messageOf(body, status) {
  if (body && typeof body === 'object') {
    if (typeof body.message === 'string' && body.message) return body.message;
    if (Array.isArray(body.errors) && body.errors.length) {
      return body.errors.map((e) => e.msg || e.message || String(e.code)).join('; ');
    }
  }
  return `HTTP ${status}`;
}

export async function request(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' }, cache: 'no-store' };
  if (method !== 'GET') {
    init.headers['X-Weft-Dashboard'] = '1';
    init.credentials = 'same-origin';
  }
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const abort = typeof AbortController === 'function' ? new AbortController() : null;
  let timedOut = false;
  const timer = abort ? setTimeout(() => { timedOut = true; abort.abort(); }, TIMEOUT_MS) : null;
  if (abort) init.signal = abort.signal;
  let res;
  let text;
  try {
    res = await fetch(path, init);
    text = await res.text().catch(() => {
      if (timedOut) throw new Error('timeout');
      return '';
    });
  } catch (e) {
    setOnline(false);
    throw timedOut
      ? new TimeoutError(`The control plane did not answer within ${TIMEOUT_MS / 1000} s`)
      : new NetworkError('Cannot reach the control plane');
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  // A gateway in front of a restarting control plane answers 502/503/504 without our JSON.
  if (data === null && (res.status === 502 || res.status === 503 || res.status === 504)) {
    setOnline(false);
    throw new NetworkError(`Control plane unavailable (HTTP ${res.status})`);
  }
  setOnline(true);
  if (!res.ok) throw new ApiError(res.status, messageOf(data, res.status), data);
  return data;
}

/** Query string from an object, leaving out empty values. */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  }
  const s = u.toString();
  return s ? `?${s}` : '';
}

const get = (path) => request('GET', path);
/** One path segment: "." and ".." (also as %2E) would be resolved away by the URL parser. */
function enc(v) {
  const e = encodeURIComponent(v);
  if (/^(\.|%2e){1,2}$/i.test(e)) throw new ApiError(404, `No such name: ${v}`, null);
  return e;
}

export const api = {
  graph: (p) => get(`/api/mesh/graph${qs(p)}`),
  metrics: (p) => get(`/api/mesh/metrics${qs(p)}`),
  services: () => get('/api/mesh/services'),
  config: () => get('/api/mesh/config'),
  trafficList: () => get('/api/mesh/traffic'),
  traffic: (namespace, service) => get(`/api/mesh/traffic${qs({ namespace, service })}`),
  putTraffic: (namespace, service, body) =>
    request('PUT', `/api/mesh/traffic${qs({ namespace, service })}`, body),
  resetTraffic: (namespace, service, resourceVersion) =>
    request('DELETE', `/api/mesh/traffic${qs({ namespace, service, resourceVersion: resourceVersion ?? '' })}`),
  routes: () => get('/api/mesh/routes'),
  tap: (p) => get(`/api/mesh/tap${qs(p)}`),
  jaegerServices: () => get('/api/services'),
  operations: async (service) => get(`/api/services/${enc(service)}/operations`),
  traces: (p) => get(`/api/traces${qs(p)}`),
  trace: async (id) => get(`/api/traces/${enc(id)}`),
  /** Any cheap GET, to learn whether the control plane answers again. */
  probe: () => get('/api/mesh/traffic'),
};
