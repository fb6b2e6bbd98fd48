// The nurse app in headless Chromium at a phone's size (360×740), with the
// browser's geolocation emulated, against the real platform binary with
// automatic dispatch on: sign in, go on shift, positions reach the
// coordinators' roster; an order placed through the API becomes an offer
// on the phone with a countdown; accept opens the job; the steps run to
// completed; the platform restarted mid-shift: the app reconnects by itself
// and the fixes taken while it was down arrive. A screenshot of each main
// screen lands in tests/browser/artifacts/nurse-*.png.
//
// The app's pure rules (state.js, fixes.js, maps.js) are tested first, alone.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Platform, launchChromium, phoneContext } from './platform.js';

const here = import.meta.dirname ?? new URL('.', import.meta.url).pathname;
const ASSETS_DIR = join(here, '..', '..', 'crates', 'nurse-app', 'assets');
const ARTIFACTS = join(here, 'artifacts');
const WAIT = 15000;
/** Sign in with the dev sign-in by external id instead of the SMS code. */
const DEV_SIGNIN = process.env.NURSE_TEST_DEV_SIGNIN === '1';

async function load(name) {
  const source = readFileSync(join(ASSETS_DIR, name), 'utf8');
  return import(`data:text/javascript,${encodeURIComponent(source)}`);
}

describe('nurse app rules', () => {
  test('steps, countdowns, distances, back-off', async () => {
    const S = await load('state.js');
    assert.equal(S.nextStep('assigned'), 'en_route');
    assert.equal(S.nextStep('en_route'), 'arrived');
    assert.equal(S.nextStep('arrived'), 'started');
    assert.equal(S.nextStep('in_service'), 'completed');
    assert.equal(S.nextStep('completed'), null);
    assert.equal(S.nextStep('cancelled'), null);
    assert.equal(S.stepsDone('assigned'), 0);
    assert.equal(S.stepsDone('in_service'), 3);
    assert.equal(S.stepsDone('completed'), 4);
    const now = Date.parse('2026-11-30T10:00:00Z');
    assert.equal(S.secondsLeft('2026-11-30T10:00:29.2Z', now), 30);
    assert.equal(S.secondsLeft('2026-11-30T09:59:00Z', now), 0);
    assert.equal(S.distanceText(850), '850 m');
    assert.equal(S.distanceText(2400), '2.4 km');
    assert.equal(S.age(1950, new Date('2026-06-01')), 76);
    assert.equal(S.backoff(0, () => 0.5), 1000);
    assert.equal(S.backoff(3, () => 0.5), 8000);
    assert.equal(S.backoff(30, () => 0.5), 15000, 'capped');
    assert.equal(S.backoff(30, () => 0), 7500, 'jitter down');
    assert.equal(S.backoff(30, () => 0.999), 22485, 'jitter up');
  });

  test('fixes are kept in order, bounded, oldest first', async () => {
    const F = await load('fixes.js');
    const b = new F.FixBuffer(3);
    const at = (s) => ({ lat: 29.39, lng: 106.32, accuracy_m: 5, ts: new Date(Date.UTC(2026, 10, 30, 10, 0, s)).toISOString() });
    assert.ok(b.push(at(1)));
    assert.ok(!b.push(at(1)), 'not newer: dropped');
    assert.ok(!b.push(at(0)), 'older: dropped');
    for (const s of [2, 3, 4]) b.push(at(s));
    assert.equal(b.size, 3);
    assert.equal(b.dropped, 1, 'the oldest went');
    assert.deepEqual(b.peek(2).map((f) => f.ts), [at(2).ts, at(3).ts]);
    b.drop(2);
    assert.deepEqual(b.peek(5).map((f) => f.ts), [at(4).ts]);
    const fix = F.toFix({ coords: { latitude: 29.4, longitude: 106.3, accuracy: 7 }, timestamp: Date.UTC(2026, 0, 1) });
    assert.deepEqual(fix, { lat: 29.4, lng: 106.3, accuracy_m: 7, ts: '2026-01-01T00:00:00.000Z' });
    assert.equal(F.ageText(12_400), '12 秒');
    assert.equal(F.ageText(185_000, 'en'), '3 min');
  });

  test('navigation links say the point is WGS-84', async () => {
    const M = await load('maps.js');
    const links = M.navLinks({ lat: 29.39, lng: 106.32 }, '福城大道 88 号');
    assert.deepEqual(links.map((l) => l.key), ['amap', 'baidu', 'apple']);
    assert.match(links[0].url, /^https:\/\/uri\.amap\.com\/navigation\?to=106\.320000,29\.390000,/);
    assert.match(links[0].url, /coordinate=wgs84/);
    assert.match(links[1].url, /location=29\.390000,106\.320000/);
    assert.match(links[1].url, /coord_type=wgs84/);
    assert.match(links[2].url, /daddr=29\.390000,106\.320000/);
    for (const l of links) assert.ok(l.url.includes(encodeURIComponent('福城大道')), l.key);
  });
});

// Shuangfu (the demo area): the nurse starts at START, the order is at HOME,
// and while the platform is down she moves to MOVED.
const START = { latitude: 29.3925, longitude: 106.3228 };
const HOME = { lat: 29.39, lng: 106.32 };
const MOVED = { latitude: 29.3951, longitude: 106.3262 };
const PHONE = '13712340001';

describe('nurse app', () => {
  let platform;
  let browser;
  let context;
  let page;
  let coordinator;
  let nurse;
  let orderId;
  const consoleErrors = [];

  const shot = (name) => page.screenshot({ path: join(ARTIFACTS, `nurse-${name}.png`), fullPage: true });

  async function rosterEntry() {
    const roster = await platform.ok('GET', '/v1/dispatch/nurses', coordinator);
    return roster.find((n) => n.id === nurse.id);
  }

  async function until(what, check, timeout = WAIT) {
    const end = Date.now() + timeout;
    let last;
    while (Date.now() < end) {
      last = await check();
      if (last) return last;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  const near = (p, q) => Math.abs(p.lat - q.latitude) < 1e-6 && Math.abs(p.lng - q.longitude) < 1e-6;

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    platform = new Platform();
    platform.env.YIXIN_DISPATCH__AUTO = 'true';
    platform.env.YIXIN_DISPATCH__OFFER_TTL_SECS = '120';
    await platform.start();
    coordinator = await platform.token('coordinator', 'nurse-app-test');
    const n = await platform.hireNurse(coordinator, {
      name: '林护士',
      phone: PHONE,
      skills: ['wound_care'],
      external_id: `hr-${platform.id}`,
    });
    nurse = { id: n.id, external: n.external_id };
    browser = await launchChromium({ sound: true });
    context = await phoneContext(browser, START);
    page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    page.on('console', (msg) => {
      // The socket's failed handshakes while the platform is down are expected.
      if (msg.type() === 'error' && !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(msg.text())) {
        consoleErrors.push(msg.text());
      }
    });
    page.on('pageerror', (err) => consoleErrors.push(err.message));
  });

  after(async () => {
    if (browser) await browser.close();
    if (platform) await platform.stop();
  });

  test('is an installable app under a strict policy', async () => {
    const res = await page.goto(`${platform.baseUrl}/nurse/`);
    assert.equal(res.status(), 200);
    const csp = res.headers()['content-security-policy'];
    assert.match(csp, /script-src 'self';/);
    assert.match(csp, /worker-src 'self';/);
    assert.match(csp, /manifest-src 'self';/);
    assert.doesNotMatch(csp, /unsafe/);
    const manifest = await platform.call('GET', '/nurse/manifest.webmanifest');
    assert.equal(manifest.status, 200);
    assert.equal(manifest.json.display, 'standalone');
    // The service worker installs and takes the page.
    const scope = await page.evaluate(() => Promise.race([
      navigator.serviceWorker.ready.then((r) => r.scope),
      new Promise((r) => setTimeout(() => r('no service worker within 10 s'), 10000)),
    ]));
    assert.equal(scope, `${platform.baseUrl}/nurse/`);
  });

  test('signs in by SMS code; a number or subject not on the roster is refused plainly', async () => {
    assert.equal(await page.locator('#signin h1').textContent(), '护士登录', 'Chinese by default');
    // The dev sign-in (dev login is on here) checks the roster too.
    await page.locator('#dev-signin').waitFor({ state: 'visible' });
    await page.click('#dev-signin summary');
    await page.fill('#dev-sub', 'nobody-here');
    await page.click('#dev-form button[type="submit"]');
    await page.locator('#signin-error', { hasText: '不是本机构在册护士' }).waitFor();
    await page.click('#dev-signin summary');
    if (DEV_SIGNIN) {
      // Without SMS: the identity provider's subject (the roster's external_id), not our UUID.
      await page.click('#dev-signin summary');
      await page.fill('#dev-sub', nurse.external);
      await page.click('#dev-form button[type="submit"]');
    } else {
      await page.fill('#phone', '13700009999');
      await page.click('#send-code');
      await page.locator('#signin-error', { hasText: '不是本机构在册护士' }).waitFor();
      await page.fill('#phone', PHONE);
      await page.click('#send-code');
      await page.locator('#code-form').waitFor({ state: 'visible' });
      assert.equal(await page.locator('#signin-error').textContent(), '');
      // The `log` sender writes the message to the platform's log.
      const code = await until('the SMS code in the log', async () => {
        for (const line of [...platform.log].reverse()) {
          if (!line.includes('log sender') || !line.includes(PHONE.slice(-4))) continue;
          const m = line.match(/code\W+(\d{4,8})\b/);
          if (m) return m[1];
        }
        return null;
      });
      await page.fill('#code', code);
      await shot('signin');
      await page.click('#code-form button[type="submit"]');
    }
    await page.locator('#home').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#who').textContent(), '林护士');
    assert.equal(await page.locator('#shift').textContent(), '上班');
  });

  test('goes on shift: positions reach the coordinators\' roster', async () => {
    await page.click('#shift');
    await page.locator('#shift[data-on="true"]').waitFor();
    await page.locator('#conn[data-state="live"]').waitFor();
    await page.locator('#fix-age', { hasText: '定位' }).waitFor();
    const entry = await until('the nurse on the roster with her position', async () => {
      const e = await rosterEntry();
      return e && e.shift === 'on' && e.position && near(e.position, START) ? e : null;
    });
    assert.equal(entry.external_id, nurse.external);
    assert.equal(entry.stale, false);
    await shot('home');
  });

  test('an order placed through the API becomes an offer with a countdown', async () => {
    const resident = await platform.token('resident', `resident-${platform.id}`);
    const order = await platform.ok('POST', '/v1/orders', resident, {
      service_code: 'wound_care',
      consent_version: (await platform.service('wound_care')).consent.version,
      location: HOME,
      address: { text: '双福街道 福城大道 88 号', detail: '3 栋 2 单元 501' },
      contact: { name: '王女士', phone: '13812345678' },
      notes: '老人行动不便，请敲门',
    }, { 'idempotency-key': `nurse-app-${platform.id}` });
    orderId = order.id;
    await page.locator('#offer').waitFor({ state: 'visible', timeout: 30000 });
    const catalog = await platform.ok('GET', '/v1/catalog', resident);
    const svc = catalog.categories.flatMap((c) => c.services).find((s) => s.code === 'wound_care');
    assert.equal(await page.locator('#offer-service').textContent(), svc.name_zh, 'the service in words');
    const place = await page.locator('#offer-place').textContent();
    assert.match(place, /双福/, 'the area name');
    assert.doesNotMatch(await page.locator('#offer').textContent(), /福城大道|8[0-9a-f]{14}/, 'no address, no H3 id');
    const first = await page.locator('#offer-countdown').textContent();
    assert.match(first, /还剩 \d+ 秒/);
    await page.waitForTimeout(1500);
    const later = await page.locator('#offer-countdown').textContent();
    assert.ok(Number(later.match(/\d+/)[0]) < Number(first.match(/\d+/)[0]), `${first} then ${later}`);
    await shot('offer');
  });

  test('accept opens the job: address, call, navigation', async () => {
    await page.click('#offer-accept');
    await page.locator('#job').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#offer').isHidden(), true);
    assert.match(await page.locator('#job-address').textContent(), /福城大道 88 号 3 栋 2 单元 501/);
    assert.equal(await page.locator('#job-call').getAttribute('href'), 'tel:13812345678');
    assert.match(await page.locator('#job-notes').textContent(), /行动不便/);
    const nav = await page.locator('#job-nav a').evaluateAll((as) => as.map((a) => a.href));
    assert.equal(nav.length, 3);
    assert.match(nav[0], /uri\.amap\.com.*coordinate=wgs84/);
    assert.match(nav[1], /api\.map\.baidu\.com.*coord_type=wgs84/);
    assert.match(nav[2], /maps\.apple\.com/);
    assert.equal(await page.locator('#job-status').textContent(), '已接单');
    await shot('job');
    const seen = await platform.ok('GET', `/v1/dispatch/orders/${orderId}`, coordinator);
    assert.equal(seen.status, 'assigned');
  });

  test('the steps run to completed, with the server\'s answers', async () => {
    for (const [button, status] of [
      ['我已出发', '在途'],
      ['我已到达', '已到达'],
      ['开始服务', '服务中'],
      ['完成服务', '已完成'],
    ]) {
      if (button === '我已到达') {
        // At the door: the server accepts `arrived` only near the address.
        await context.setGeolocation({ latitude: HOME.lat, longitude: HOME.lng, accuracy: 8 });
        await until('the phone at the door', async () => {
          const e = await rosterEntry();
          return e && e.position && near(e.position, { latitude: HOME.lat, longitude: HOME.lng });
        });
      }
      if (button === '开始服务') {
        // Consent on site: the server refuses `started` without a name.
        await page.locator('#job-consent').waitFor();
        await page.fill('#consent-by', '王女士');
      }
      if (button === '完成服务') {
        // The visit record first: `completed` is refused without it.
        await page.locator('#job-record').waitFor();
        for (const input of await page.locator('#record-fields [data-code][required]').all()) {
          const type = await input.getAttribute('data-type');
          if (type === 'number') {
            const [min, max] = [Number(await input.getAttribute('min')), Number(await input.getAttribute('max'))];
            await input.fill(String((min + max) / 2));
          } else if (type === 'bool' || type === 'choice') {
            await input.selectOption({ index: 2 });
          } else {
            await input.fill('正常');
          }
        }
        await shot('record');
        await page.locator('#job-record button[type="submit"]').click();
        await page.locator('#record-saved').waitFor();
      }
      await page.locator('#job-step', { hasText: button }).click();
      await page.locator('#job-status', { hasText: status }).waitFor();
    }
    await page.locator('#job-done').waitFor();
    assert.equal(await page.locator('#job-step').isHidden(), true);
    assert.equal(await page.locator('#job-error').textContent(), '');
    const seen = await platform.ok('GET', `/v1/dispatch/orders/${orderId}`, coordinator);
    assert.equal(seen.status, 'completed');
    await page.click('#job-back');
    await page.locator('#today li[data-status="completed"]').waitFor();
    await page.locator('#today-empty').waitFor({ state: 'hidden' });
    await shot('today');
  });

  test('a restart mid-shift: the app reconnects by itself and the fixes taken meanwhile arrive', async () => {
    await platform.stopProcess();
    await page.locator('#conn[data-state="offline"]').waitFor();
    // She moves while the platform is down: the fix is kept on the phone.
    await context.setGeolocation({ ...MOVED, accuracy: 6 });
    await page.locator('#fix-age', { hasText: '条待发送' }).waitFor();
    await shot('offline');
    const upAt = Date.now();
    await platform.start();
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: 45000 });
    const entry = await until('the fix taken while down on the roster', async () => {
      const e = await rosterEntry();
      return e && e.position && near(e.position, MOVED) ? e : null;
    });
    // Taken while the platform was down, sent from the phone's buffer.
    assert.ok(Date.parse(entry.position.recorded_at) < upAt, `${entry.position.recorded_at} is before the restart`);
    assert.equal(entry.shift, 'on');
    await page.locator('#fix-age', { hasText: '条待发送' }).waitFor({ state: 'hidden' }).catch(() => {});
    assert.doesNotMatch(await page.locator('#fix-age').textContent(), /待发送/, 'the buffer is empty');
  });

  test('switches to English and back; no errors in the console', async () => {
    await page.selectOption('#lang', 'en');
    assert.equal(await page.locator('#shift').textContent(), 'End shift');
    assert.equal(await page.locator('h2[data-i18n="today.title"]').textContent(), "Today's jobs");
    await page.selectOption('#lang', 'zh');
    assert.equal(await page.locator('#shift').textContent(), '下班');
    assert.deepEqual(consoleErrors, []);
    assert.ok(existsSync(join(ARTIFACTS, 'nurse-offer.png')));
  });
});
