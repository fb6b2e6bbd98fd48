// Nurse safety in two real browsers (issue 17): the nurse's phone (360×740)
// raises an SOS from the header button (a tap arms it, a second tap sends
// it; holding it for a second sends it too), the coordinator's dashboard
// shows the loud banner and the marker on the map at once, acknowledges
// (the phone sees "a coordinator is on it"), then resolves with a note
// (the banner goes, the phone's state clears). Screenshots land in
// tests/browser/artifacts/safety-*.png.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Platform, launchChromium, phoneContext } from './platform.js';

const here = import.meta.dirname ?? new URL('.', import.meta.url).pathname;
const ARTIFACTS = join(here, 'artifacts');
const WAIT = 15000;
const AT = { latitude: 29.3925, longitude: 106.3228 };

describe('nurse safety', () => {
  let platform;
  let browser;
  let phone;
  let desk;
  let coordinator;
  let nurse;
  const errors = [];

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    platform = new Platform();
    await platform.start();
    coordinator = await platform.token('coordinator', 'safety-test');
    const n = await platform.ok('POST', '/v1/dispatch/nurses', coordinator, {
      name: '周护士', phone: '13712340077', skills: ['wound_care'], external_id: `hr-safety-${platform.id}`,
    });
    nurse = n;
    browser = await launchChromium({ sound: true });
    phone = await (await phoneContext(browser, AT)).newPage();
    const deskContext = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'zh-CN' });
    desk = await deskContext.newPage();
    for (const p of [phone, desk]) {
      p.setDefaultTimeout(WAIT);
      p.on('pageerror', (e) => errors.push(e.message));
      p.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) errors.push(m.text()); });
    }
  });

  after(async () => {
    if (browser) await browser.close();
    if (platform) await platform.stop();
  });

  test('an SOS from the phone reaches the dashboard, is acknowledged and resolved', async () => {
    // The coordinator's dashboard, open.
    await desk.goto(`${platform.baseUrl}/dashboard#token=${coordinator}`);
    await desk.locator('#main').waitFor({ state: 'visible' });
    await desk.locator('#conn[data-state="live"]').waitFor();

    // The nurse signs in (dev sign-in by her organisation's subject).
    await phone.goto(`${platform.baseUrl}/nurse/`);
    await phone.click('#dev-signin summary');
    await phone.fill('#dev-sub', nurse.external_id);
    await phone.click('#dev-form button[type="submit"]');
    await phone.locator('#home').waitFor({ state: 'visible' });
    const sos = phone.locator('#sos');
    await sos.waitFor({ state: 'visible' });
    const box = await sos.boundingBox();
    assert.ok(box.height >= 48 && box.width >= 48, `a big target: ${JSON.stringify(box)}`);
    // Let the phone take a fix (the alarm carries it).
    await phone.click('#shift');
    await phone.locator('#fix-age', { hasText: '定位' }).waitFor();

    // One tap only arms it: nothing is sent.
    await sos.click();
    await phone.locator('#sos.armed').waitFor();
    assert.equal(await phone.locator('.sos-label').textContent(), '再按确认');
    await phone.screenshot({ path: join(ARTIFACTS, 'safety-phone-armed.png') });
    assert.deepEqual(await platform.ok('GET', '/v1/dispatch/alarms', coordinator), []);
    // The second tap sends it.
    const sent = Date.now();
    await sos.click();
    await phone.locator('#sos-state', { hasText: '已报警' }).waitFor();

    // The dashboard: banner, marker, sound.
    const card = desk.locator('.alarm-banner .alarm');
    await card.waitFor();
    const seenAfter = Date.now() - sent;
    console.log(`SOS on the dashboard ${seenAfter} ms after the second tap`);
    assert.ok(seenAfter < 3000, `${seenAfter} ms`);
    assert.match(await card.textContent(), /紧急求助 SOS/);
    assert.match(await card.textContent(), /周护士/);
    assert.match(await card.textContent(), /29\.39250/);
    await desk.locator('.alarm-banner.alarm-loud').waitFor();
    await desk.locator('#map .alarm-marker').waitFor({ state: 'attached' });
    await phone.screenshot({ path: join(ARTIFACTS, 'safety-phone-raised.png') });
    await desk.screenshot({ path: join(ARTIFACTS, 'safety-dashboard-alarm.png') });

    // Acknowledge: the phone learns a coordinator is on it.
    await desk.click('.alarm-ack');
    await desk.locator('.alarm.alarm-acknowledged').waitFor();
    await phone.locator('#sos-state', { hasText: '调度已响应' }).waitFor();
    // Resolve needs a note.
    await desk.click('.alarm-resolve');
    await desk.locator('.toast', { hasText: '请填写处理说明' }).waitFor();
    await desk.fill('.alarm-note', '已电话联系，护士安全');
    await desk.setViewportSize({ width: 390, height: 844 });
    await desk.screenshot({ path: join(ARTIFACTS, 'safety-dashboard-phone.png') });
    await desk.setViewportSize({ width: 1280, height: 800 });
    await desk.click('.alarm-resolve');
    await desk.locator('.alarm-banner').waitFor({ state: 'detached' });
    await phone.locator('#sos-state').waitFor({ state: 'hidden' });
    const all = await platform.ok('GET', '/v1/dispatch/alarms?state=all', coordinator);
    assert.equal(all.length, 1);
    assert.equal(all[0].state, 'resolved');
    assert.equal(all[0].resolution_note, '已电话联系，护士安全');
    assert.equal(all[0].acknowledged_by, 'safety-test');
    assert.ok(all[0].location, 'the alarm carries her position');
  });

  test('holding the button for a second sends it too', async () => {
    const sos = await phone.locator('#sos').boundingBox();
    await phone.mouse.move(sos.x + sos.width / 2, sos.y + sos.height / 2);
    await phone.mouse.down();
    await phone.waitForTimeout(1300);
    await phone.mouse.up();
    await phone.locator('#sos-state', { hasText: '已报警' }).waitFor();
    await desk.locator('.alarm-banner .alarm').waitFor();
    const open = await platform.ok('GET', '/v1/dispatch/alarms', coordinator);
    assert.equal(open.length, 1);
    assert.equal(open[0].kind, 'sos');
    assert.deepEqual(errors, []);
  });
});
