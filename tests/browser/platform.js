// Starts the real `yixin serve` binary for a browser test, as a deployment
// would run it: PostgreSQL + Redis (TEST_BACKEND=postgres, the default) with
// a database of its own and a Redis key prefix of its own, or the embedded
// backend (TEST_BACKEND=embedded: SQLite in a temporary directory and the
// in-process queue). Dev login and the demo organisation are on; automatic
// dispatch is off, so the coordinator (the test, through the page) assigns.

import { spawn, execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const REPO = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..');

/**
 * Headless Chromium as every browser test runs it: Debian's package (a
 * browser download fails here), no sandbox, no background traffic; `sound`
 * lets a page play its alert tones without a user gesture.
 */
export function launchChromium({ sound = false } = {}) {
  const args = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run'];
  if (sound) args.push('--autoplay-policy=no-user-gesture-required');
  return chromium.launch({ executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium', headless: true, args });
}

/**
 * A phone's browser context: touch, 2× pixels, Chinese, located at `at`
 * (`{ latitude, longitude }`, 8 m accuracy) with leave to read it; 360×740
 * unless `viewport` says otherwise; `extra` adds other context options.
 */
export function phoneContext(browser, at, { viewport = { width: 360, height: 740 }, ...extra } = {}) {
  return browser.newContext({
    viewport,
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    locale: 'zh-CN',
    geolocation: { ...at, accuracy: 8 },
    permissions: ['geolocation'],
    ...extra,
  });
}

export function binaryPath() {
  if (process.env.YIXIN_BIN) return process.env.YIXIN_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(REPO, 'target');
  return join(target, 'debug', 'yixin');
}

function psql(url, sql) {
  execFileSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-q', '-c', sql], { stdio: ['ignore', 'ignore', 'pipe'] });
}

function withDatabase(serverUrl, name) {
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A platform started for one test file; `restart()` keeps its data and port. */
export class Platform {
  constructor() {
    this.id = randomBytes(6).toString('hex');
    this.backend = process.env.TEST_BACKEND === 'embedded' ? 'embedded' : 'postgres';
    this.dataDir = mkdtempSync(join(tmpdir(), 'yixin-browser-'));
    this.env = {
      ...process.env,
      YIXIN_AUTH__DEV_LOGIN: 'true',
      YIXIN_DEMO__ENABLED: 'true',
      YIXIN_DISPATCH__AUTO: 'false',
      YIXIN_DATABASE__DATA_DIR: this.dataDir,
      YIXIN_DATABASE__MAX_CONNECTIONS: '5',
      YIXIN_SERVER__WORKERS: '2',
      YIXIN_SERVER__SHUTDOWN_TIMEOUT_SECS: '3',
      YIXIN_LOG__FORMAT: 'text',
      YIXIN_LOG__FILTER: 'info',
      RUST_LOG: 'info',
      NO_COLOR: '1',
    };
    delete this.env.DATABASE_URL;
    delete this.env.REDIS_URL;
    if (this.backend === 'postgres') {
      this.serverUrl = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
      this.database = `yixin_browser_${this.id}`;
      psql(this.serverUrl, `CREATE DATABASE "${this.database}"`);
      this.redisPrefix = `browser:${this.id}:`;
      this.env.DATABASE_URL = withDatabase(this.serverUrl, this.database);
      this.env.REDIS_URL = process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379';
      this.env.YIXIN_REDIS__KEY_PREFIX = this.redisPrefix;
      this.env.YIXIN_AUTH__JWT_SECRET = randomBytes(32).toString('hex');
    }
    this.addr = '127.0.0.1:0';
    this.child = null;
    this.log = [];
  }

  get baseUrl() {
    return `http://${this.addr}`;
  }

  /** Starts the binary and waits until `/readyz` answers 200. */
  async start() {
    const bin = binaryPath();
    if (!existsSync(bin)) throw new Error(`${bin} not found: build it first (cargo build -p yixin)`);
    const child = spawn(bin, ['serve', '--addr', this.addr], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const serving = new Promise((resolveAddr, reject) => {
      const onLine = (chunk) => {
        for (const line of chunk.toString().split('\n')) {
          if (!line) continue;
          this.log.push(line);
          if (this.log.length > 400) this.log.shift();
          const m = line.includes('yixin is serving') && line.match(/addr[=:]\s*"?(\d+\.\d+\.\d+\.\d+:\d+)/);
          if (m) resolveAddr(m[1]);
        }
      };
      child.stdout.on('data', onLine);
      child.stderr.on('data', onLine);
      child.on('exit', (code) => reject(new Error(`yixin exited with ${code} before serving:\n${this.log.join('\n')}`)));
      setTimeout(() => reject(new Error(`yixin did not start within 60 s:\n${this.log.join('\n')}`)), 60000);
    });
    this.addr = await serving;
    for (let i = 0; i < 100; i++) {
      try {
        const res = await fetch(`${this.baseUrl}/readyz`);
        if (res.ok) return;
      } catch (_) {
        // not yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`yixin never became ready:\n${this.log.join('\n')}`);
  }

  /** SIGTERM and wait (SIGKILL after 15 s). */
  async stopProcess() {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
    await exited;
    clearTimeout(timer);
    this.child = null;
  }

  /** A restart on the same address with the same data: clients must reconnect by themselves. */
  async restart() {
    await this.stopProcess();
    await this.start();
  }

  /** Stops the binary and removes its database, Redis keys and files. */
  async stop() {
    await this.stopProcess();
    if (this.backend === 'postgres') {
      try {
        psql(this.serverUrl, `DROP DATABASE IF EXISTS "${this.database}" WITH (FORCE)`);
      } catch (e) {
        console.warn(`could not drop ${this.database}: ${e.message}`);
      }
      try {
        const url = this.env.REDIS_URL;
        const keys = execFileSync('redis-cli', ['-u', url, '--scan', '--pattern', `${this.redisPrefix}*`]).toString().split('\n').filter(Boolean);
        for (let i = 0; i < keys.length; i += 200) {
          execFileSync('redis-cli', ['-u', url, 'DEL', ...keys.slice(i, i + 200)], { stdio: 'ignore' });
        }
      } catch (_) {
        // redis-cli missing: the keys stay (prefixed, harmless).
      }
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  // ------------------------------------------------------------ API helpers

  async call(method, path, token, body, headers = {}) {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch (_) {
      json = null;
    }
    return { status: res.status, json, text };
  }

  async ok(method, path, token, body, headers) {
    const r = await this.call(method, path, token, body, headers);
    if (r.status < 200 || r.status > 299) throw new Error(`${method} ${path}: ${r.status} ${r.text}`);
    return r.json;
  }

  async token(role, sub, org = 'demo') {
    return (await this.ok('POST', '/v1/auth/dev-token', null, { role, sub, org })).token;
  }

  /** The seed catalogue's service `code` (with its consent and record form). */
  async service(code) {
    const reader = await this.token('resident', `catalog-${this.id}`);
    const catalog = await this.ok('GET', '/v1/catalog', reader);
    return catalog.categories.flatMap((c) => c.services).find((s) => s.code === code);
  }

  /**
   * Enters and verifies credentials that meet every service's requirements:
   * without them the dispatch gate never offers the nurse anything.
   */
  /** A nurse put on the roster by `coordinator`, her credentials verified. */
  async hireNurse(coordinator, nurse) {
    const n = await this.ok('POST', '/v1/dispatch/nurses', coordinator, nurse);
    await this.qualify(coordinator, n.id);
    return n;
  }

  async qualify(coordinator, nurseId) {
    const certificates = ['picc', 'wound_stoma', 'maternal_infant', 'rehab', 'oral_care']
      .map((code) => ({ code, number: `B-${code}`, issued_on: '2020-01-01', expires_on: null }));
    await this.ok('PUT', `/v1/dispatch/nurses/${nurseId}/credentials`, coordinator, {
      licence_no: '201211000002', first_registered_on: '2012-03-01', title: 'supervisor_nurse', certificates,
    });
    await this.ok('POST', `/v1/dispatch/nurses/${nurseId}/credentials/verify`, coordinator, {});
  }

  /**
   * One visit step through the nurse API, as the clinical rules ask:
   * `started` names who consented on site, and `completed` comes after a
   * visit record with a plausible value for each required field.
   */
  async visitStep(nurseToken, orderId, step) {
    if (step === 'completed') {
      const order = await this.ok('GET', '/v1/nurse/jobs', nurseToken);
      const job = order.find((j) => j.order_id === orderId);
      const svc = await this.service(job.service_code);
      await this.ok('POST', `/v1/nurse/orders/${orderId}/record`, nurseToken, { values: plausibleRecord(svc.record_template) });
    }
    const body = step === 'started' ? { step, consent_by: '王女士' } : { step };
    if (step === 'arrived') {
      // At the door: the server checks the phone's distance to the address.
      const jobs = await this.ok('GET', '/v1/nurse/jobs', nurseToken);
      const job = jobs.find((j) => j.order_id === orderId);
      if (job && job.location) body.location = { lat: job.location.lat, lng: job.location.lng, accuracy_m: 10 };
    }
    return this.ok('POST', `/v1/nurse/orders/${orderId}/progress`, nurseToken, body);
  }
}

/** A value for each required field of a record template, inside its range. */
export function plausibleRecord(template) {
  const values = {};
  for (const f of template || []) {
    if (!f.required) continue;
    if (f.type === 'number') values[f.code] = f.min != null && f.max != null ? (f.min + f.max) / 2 : (f.min ?? f.max ?? 1);
    else if (f.type === 'bool') values[f.code] = false;
    else if (f.type === 'choice') values[f.code] = typeof f.choices[0] === 'object' ? f.choices[0].code : f.choices[0];
    else values[f.code] = '正常';
  }
  return values;
}
