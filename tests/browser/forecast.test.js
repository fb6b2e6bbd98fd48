// Demand forecast and repositioning in the browser: two days of the
// organisation's order history in the north-east of the demo area (written
// straight into PostgreSQL, as past orders are: the API only makes orders
// now); a nurse on shift 3.5 km west of it gets the suggestion card on her
// phone (distance, expected orders, map links) and dismisses it with
// "忽略 Ignore"; the coordinator turns on the "需求预测 Forecast" layer and
// sees the cell shaded and an arrow from the nurse to her waiting spot.
// Screenshots: tests/browser/artifacts/forecast-*.png.
//
// PostgreSQL only (the history is inserted with psql); skipped on the
// embedded backend.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Platform, launchChromium, phoneContext } from './platform.js';

const ARTIFACTS = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'artifacts');
const WAIT = 15000;
const DEMAND = { lat: 29.42, lng: 106.35 };
const embedded = process.env.TEST_BACKEND === 'embedded';

describe('demand forecast and repositioning', { skip: embedded && 'the history is inserted with psql' }, () => {
  let platform;
  let browser;
  let coordinator;
  let nurse;
  let cell;
  const consoleErrors = [];

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    platform = new Platform();
    platform.env.YIXIN_DISPATCH__AUTO = 'true';
    platform.env.YIXIN_DISPATCH__REPOSITION_EVERY_S = '1';
    platform.env.YIXIN_DISPATCH__REPOSITION_RELEARN_S = '1';
    platform.env.YIXIN_DISPATCH__REPOSITION_REACH_S = '600';
    await platform.start();
    // Two cancelled orders an hour at DEMAND over the two local days before today.
    execFileSync('psql', [platform.env.DATABASE_URL, '-v', 'ON_ERROR_STOP=1', '-q', '-c', `
      INSERT INTO orders (id, org_id, resident_id, service_code, status, lat, lng, address_text,
                          contact_name, contact_phone, created_at, promised_by, updated_at, version)
      SELECT gen_random_uuid(), 'demo', 'history', 'infant_jaundice_test', 'cancelled', ${DEMAND.lat}, ${DEMAND.lng},
             '双福街道 历史订单', '王芳', '13800138000', t, t + interval '30 minutes', t, 1
      FROM (SELECT (date_trunc('day', now() AT TIME ZONE 'Asia/Shanghai') AT TIME ZONE 'Asia/Shanghai')
                   - make_interval(hours => h) + interval '10 minutes' AS t
            FROM generate_series(1, 48) AS h, generate_series(1, 2) AS k) AS s`], { stdio: ['ignore', 'ignore', 'pipe'] });
    coordinator = await platform.token('coordinator', 'forecast-test');
    const forecast = await platform.ok('GET', '/v1/dispatch/forecast', coordinator);
    assert.equal(forecast.cells.length, 1, JSON.stringify(forecast));
    cell = forecast.cells[0];
    const n = await platform.hireNurse(coordinator, {
      name: '吴护士', phone: '13712340002', skills: ['neonatal'],
    });
    nurse = n;
    browser = await launchChromium();
  });

  after(async () => {
    if (browser) await browser.close();
    if (platform) await platform.stop();
  });

  const watch = (page) => {
    page.setDefaultTimeout(WAIT);
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !/WebSocket|Failed to load resource/.test(msg.text())) consoleErrors.push(msg.text());
    });
    page.on('pageerror', (err) => consoleErrors.push(err.message));
  };

  test('an idle nurse on shift gets the suggestion card and may ignore it', async () => {
    // 3.5 km west of the cell's centre: out of its reach, within a move.
    const at = { latitude: cell.center.lat, longitude: cell.center.lng - 0.0361 };
    const context = await phoneContext(browser, at);
    const page = await context.newPage();
    watch(page);
    await page.goto(`${platform.baseUrl}/nurse/`);
    await page.locator('#dev-signin').waitFor({ state: 'visible' });
    await page.click('#dev-signin summary');
    await page.fill('#dev-sub', nurse.id);
    await page.click('#dev-form button[type="submit"]');
    await page.locator('#home').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#suggestion').isHidden(), true, 'nothing before the shift');
    await page.click('#shift');
    await page.locator('#shift[data-on="true"]').waitFor();
    await page.locator('#suggestion').waitFor({ state: 'visible', timeout: 30000 });
    assert.match(await page.locator('#suggestion h3').textContent(), /建议等候点/);
    assert.match(await page.locator('#suggestion-distance').textContent(), /^3\.[4-6] km$/);
    assert.match(await page.locator('#suggestion-orders').textContent(), /约 2 单/);
    const nav = await page.locator('#suggestion-nav a').evaluateAll((as) => as.map((a) => a.href));
    assert.equal(nav.length, 3);
    assert.match(nav[0], new RegExp(`to=${cell.center.lng.toFixed(6)},${cell.center.lat.toFixed(6)}`));
    await page.screenshot({ path: join(ARTIFACTS, 'forecast-nurse-card.png'), fullPage: true });
    await page.selectOption('#lang', 'en');
    assert.match(await page.locator('#suggestion h3').textContent(), /Suggested waiting spot/);
    assert.match(await page.locator('#suggestion-ignore').textContent(), /Ignore/);
    await page.selectOption('#lang', 'zh');
    await page.click('#suggestion-ignore');
    await page.locator('#suggestion').waitFor({ state: 'hidden' });
    // Ignored: the same spot is not shown again (the server keeps it standing).
    await page.waitForTimeout(2500);
    assert.equal(await page.locator('#suggestion').isHidden(), true);
    await page.screenshot({ path: join(ARTIFACTS, 'forecast-nurse-ignored.png'), fullPage: true });
    // Her page stays open (on shift, present) while the dashboard looks.
  });

  test('the dashboard\'s forecast layer shades the cell and draws the suggestion', async () => {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'zh-CN' });
    const page = await context.newPage();
    watch(page);
    await page.goto(`${platform.baseUrl}/dashboard`);
    await page.locator('#dev-signin').click();
    await page.locator('#main').waitFor({ state: 'visible' });
    const toggle = page.locator('#forecast-toggle');
    assert.match(await toggle.textContent(), /需求预测/);
    assert.equal(await toggle.getAttribute('aria-pressed'), 'false');
    assert.equal(await page.locator('#map .forecast-cell').count(), 0, 'off by default');
    await toggle.click();
    await page.locator(`#map polygon[data-forecast-cell="${cell.cell}"]`).waitFor();
    assert.equal(await toggle.getAttribute('aria-pressed'), 'true');
    assert.match(await toggle.textContent(), /约 2\.0 单/);
    await page.locator(`#map g.suggestion[data-suggestion-nurse="${nurse.id}"]`).waitFor();
    assert.match(await page.locator('#legend').textContent(), /建议等候点/);
    await page.screenshot({ path: join(ARTIFACTS, 'forecast-dashboard.png') });
    await toggle.click();
    await page.locator('#map .forecast-cell').first().waitFor({ state: 'detached' });
    assert.equal(await page.locator('#map g.suggestion').count(), 0);
    assert.deepEqual(consoleErrors, []);
  });
});
