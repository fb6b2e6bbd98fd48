// The platform's public API for the resident app: bearer token, JSON both
// ways, and the error body {"error":{code,message,field}} as an ApiError
// whose `field` says which input to mark.

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || (status === 0 ? 'network' : 'http_error');
    this.field = e.field || null;
    this.retryAfter = retryAfter;
  }
}

export function newKey() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  return `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

export class Client {
  constructor(getToken, onSignedOut) {
    this.getToken = getToken;
    this.onSignedOut = onSignedOut;
  }

  async call(method, path, body, headers = {}) {
    const h = { accept: 'application/json', ...headers };
    const token = this.getToken();
    if (token) h.authorization = `Bearer ${token}`;
    if (body !== undefined) h['content-type'] = 'application/json';
    let res;
    try {
      res = await fetch(path, { method, headers: h, cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new ApiError(0, { error: { code: 'network', message: e.message } });
    }
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
    if (!res.ok) {
      if (res.status === 401 && token && this.onSignedOut) this.onSignedOut();
      throw new ApiError(res.status, json, Number(res.headers.get('retry-after')) || null);
    }
    return json;
  }

  get(path) { return this.call('GET', path); }
  post(path, body = {}, headers) { return this.call('POST', path, body, headers); }
  patch(path, body) { return this.call('PATCH', path, body); }
  del(path) { return this.call('DELETE', path); }
}
