// The coordinator dashboard in headless Chromium (Debian's package, driven
// by playwright-core) against the real platform binary: nurses and orders
// made through the API show up on the page live, their states change live,
// a manual assignment and a cancel made in the page take effect (checked
// through the API), open orders are listed by urgency with short ids that
// tell orders of the same minute apart, skills are named in words, a
// resident's rating reaches the coordinator, the live feed reconnects by
// itself after a restart, screening approves and rejects from the review
// tab, the language switch sticks, and screenshots are saved for a person
// to look at.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Platform, launchChromium } from './platform.js';

const ARTIFACTS = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'artifacts');
const WAIT = 15000;

// Shuangfu (the demo area): an order at HOME, nurses around it.
const HOME = { lat: 29.39, lng: 106.32 };
const SPOTS = {
  near: { lat: 29.3925, lng: 106.3228 },
  far: { lat: 29.412, lng: 106.345 },
  east: { lat: 29.402, lng: 106.352 },
  west: { lat: 29.38, lng: 106.29 },
};

let platform;
let browser;
let page;
let coordinator;
const nurses = {};
const consoleErrors = [];

/** Verified credentials that meet every service's requirements (without, the dispatch gate offers her nothing). */
const qualify = (id) => platform.qualify(coordinator, id);

async function addNurse(key, name, skills) {
  const n = await platform.ok('POST', '/v1/dispatch/nurses', coordinator, { name, phone: '13700001111', skills });
  await qualify(n.id);
  nurses[key] = { id: n.id, name, token: await platform.token('nurse', n.id) };
  return nurses[key];
}

async function fix(nurse, at) {
  await platform.ok('POST', '/v1/nurse/locations', nurse.token, {
    fixes: [{ lat: at.lat, lng: at.lng, accuracy_m: 5, ts: new Date().toISOString() }],
  });
}

async function onShift(nurse, at) {
  await platform.ok('POST', '/v1/nurse/shift', nurse.token, { state: 'on' });
  await fix(nurse, at);
}

let residents = 0;
/** Order id → the token of the resident who placed it (to rate it). */
const placedBy = new Map();
/** The seed catalogue's consent version: every order accepts it. */
const CONSENT_VERSION = '2026-11-30';
async function placeOrder(at, service = 'infant_jaundice_test', address = '双福街道 福城大道 88 号', extra = {}) {
  residents += 1;
  const resident = await platform.token('resident', `resident-${residents}-${platform.id}`);
  const order = await platform.ok('POST', '/v1/orders', resident, {
    service_code: service,
    location: at,
    address: { text: address, detail: `${residents} 栋 1 单元` },
    contact: { name: '王女士', phone: '13812345678' },
    consent_version: CONSENT_VERSION,
    ...extra,
  }, { 'idempotency-key': `browser-${platform.id}-${residents}` });
  placedBy.set(order.id, resident);
  return order.id;
}

const nurseDot = (id) => `#map circle[data-nurse-id="${id}"]`;
const listItem = (id) => `#open-orders li[data-order-id="${id}"]`;
/** The short id the page shows: the last 8 hex digits of the UUID (its random part). */
const shortOf = (id) => id.replace(/-/g, '').slice(-8);
/** The order the nurse of `near` works on in the assignment test (en route, later in service). */
let riding = null;

describe('coordinator dashboard', () => {
  before(async () => {
    platform = new Platform();
    await platform.start();
    coordinator = await platform.token('coordinator', 'browser-test');
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'zh-CN' });
    page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(msg.text());
    });
    page.on('pageerror', (err) => consoleErrors.push(err.message));
  });

  after(async () => {
    if (browser) await browser.close();
    if (platform) await platform.stop();
  });

  test('signs in with the dev button and shows the live map', async () => {
    await addNurse('near', '李近', ['neonatal']);
    await addNurse('far', '张远', ['neonatal', 'wound_care']);
    await addNurse('east', '陈东', ['oral_care', 'rehab']);
    await addNurse('west', '王西', ['neonatal', 'maternal']);
    await onShift(nurses.near, SPOTS.near);
    await onShift(nurses.far, SPOTS.far);
    await onShift(nurses.west, SPOTS.west);

    const response = await page.goto(`${platform.baseUrl}/dashboard`);
    assert.equal(response.status(), 200);
    const csp = response.headers()['content-security-policy'];
    assert.match(csp, /script-src 'self';/);

    const dev = page.locator('#dev-signin');
    await dev.waitFor({ state: 'visible' });
    assert.match(await dev.textContent(), /开发登录/, 'Chinese labels by default');
    await dev.click();
    await page.locator('#main').waitFor({ state: 'visible' });
    await page.locator('#conn[data-state="live"]').waitFor();
    assert.equal(await page.locator('#tabs .tab.active').textContent(), '实时地图');

    // The area and its H3 cells are drawn by the page itself.
    await page.locator('#map path.area').first().waitFor();
    assert.ok(await page.locator('#map polygon.cell').count() >= 12, 'H3 cells drawn');
    // Nurses on shift are on the map, coloured by state.
    for (const key of ['near', 'far', 'west']) {
      await page.locator(`${nurseDot(nurses[key].id)}[data-state="free"]`).waitFor();
    }
    assert.equal(await page.locator(nurseDot(nurses.east.id)).count(), 0, 'off shift: not on the map');
    await page.locator('.kpi-nurses .kpi-value', { hasText: '3' }).waitFor();
  });

  test('shows nurses and orders as they change, live', async () => {
    // A nurse comes on shift: she appears without a reload.
    await onShift(nurses.east, SPOTS.east);
    await page.locator(`${nurseDot(nurses.east.id)}[data-state="free"]`).waitFor();

    // A nurse moves: her dot moves.
    const before = await page.locator(nurseDot(nurses.far.id)).getAttribute('cx');
    await fix(nurses.far, { lat: 29.405, lng: 106.335 });
    await page.waitForFunction(([sel, old]) => {
      const dot = document.querySelector(sel);
      return dot && dot.getAttribute('cx') !== old;
    }, [nurseDot(nurses.far.id), before]);

    // An order is placed: it is listed and pinned with its countdown.
    const order = await placeOrder(HOME);
    await page.locator(`${listItem(order)}[data-status="pending"]`).waitFor();
    const pin = page.locator(`#map g.order[data-order-id="${order}"]`);
    await pin.waitFor();
    assert.match(await pin.locator('text.countdown').textContent(), /^(29|30):\d\d$/);
    assert.match(await page.locator(`${listItem(order)} .countdown`).textContent(), /剩 (29|30):\d\d/);
    await page.locator('.kpi-open .kpi-value', { hasText: '1' }).waitFor();

    // A nurse goes off shift: she leaves the map.
    await platform.ok('POST', '/v1/nurse/shift', nurses.east.token, { state: 'off' });
    await page.locator(nurseDot(nurses.east.id)).waitFor({ state: 'detached' });
  });

  test('assigns an order by hand, nurses listed by ETA', async () => {
    const order = await placeOrder({ lat: 29.391, lng: 106.321 }, 'infant_jaundice_test', '双福新区 南北大道 16 号');
    await page.locator(listItem(order)).click();
    const drawer = page.locator(`#drawer[data-order-id="${order}"]`);
    await drawer.waitFor();
    // The skill the service needs, in words (the code stays in data-skill).
    await drawer.locator('.fields .skill-chip[data-skill="neonatal"]', { hasText: '新生儿护理' }).waitFor();
    const rows = drawer.locator('table.candidates tr[data-nurse-id]');
    await rows.first().waitFor();
    // Each candidate's skills, in words.
    await drawer.locator(`tr[data-nurse-id="${nurses.far.id}"] .skill-chip[data-skill="wound_care"]`, { hasText: '伤口护理' }).waitFor();
    // Soonest first: the nurse next door, then the one further away.
    const ids = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.nurseId));
    assert.equal(ids[0], nurses.near.id);
    assert.ok(ids.indexOf(nurses.far.id) > 0);
    // The oral-care nurse lacks the skill (and is off shift): she cannot be chosen.
    const east = drawer.locator(`tr[data-nurse-id="${nurses.east.id}"] button.assign-button`);
    assert.equal(await east.isDisabled(), true);

    await drawer.locator(`tr[data-nurse-id="${nurses.near.id}"] button.assign-button`).click();
    await page.locator(`#drawer[data-status="assigned"]`).waitFor();
    await page.locator('.toast-ok', { hasText: nurses.near.name }).waitFor();

    // It took effect on the platform.
    const seen = await platform.ok('GET', `/v1/dispatch/orders/${order}`, coordinator);
    assert.equal(seen.status, 'assigned');
    assert.equal(seen.nurse_id, nurses.near.id);
    // The page shows the nurse busy, with a line to the order.
    await page.locator(`${nurseDot(nurses.near.id)}[data-state="busy"]`).waitFor();
    await page.locator(`#map line.job-line[data-line="${nurses.near.id}:${order}"]`).waitFor();

    // The nurse sets off (from her phone): the page follows.
    await platform.ok('POST', `/v1/nurse/orders/${order}/progress`, nurses.near.token, { step: 'en_route' });
    await page.locator(`${listItem(order)}[data-status="en_route"]`).waitFor();
    await page.locator('#drawer [data-status="en_route"]').first().waitFor();
    await page.keyboard.press('Escape');
    await drawer.waitFor({ state: 'detached' });
    riding = order;
  });

  test('lists open orders by urgency, each with its own short id', async () => {
    // Two orders placed within the same second: UUIDv7 ids that share their
    // leading (time) digits, so the page must not show those.
    const [a, b] = await Promise.all([
      placeOrder({ lat: 29.381, lng: 106.301 }, 'infant_jaundice_test', '双福街道 和平路 1 号'),
      placeOrder({ lat: 29.382, lng: 106.302 }, 'infant_jaundice_test', '双福街道 和平路 2 号'),
    ]);
    const idA = page.locator(`${listItem(a)} .short-id`);
    const idB = page.locator(`${listItem(b)} .short-id`);
    await idA.waitFor();
    await idB.waitFor();
    assert.equal(await idA.textContent(), shortOf(a));
    assert.equal(await idB.textContent(), shortOf(b));
    assert.notEqual(await idA.textContent(), await idB.textContent());

    // The nurse on her way arrives and starts: the visit is in service.
    await platform.visitStep(nurses.near.token, riding, 'arrived');
    await platform.visitStep(nurses.near.token, riding, 'started');
    await page.locator(`${listItem(riding)}[data-status="in_service"]`).waitFor();
    // Older than the waiting orders (its promise comes first), yet listed
    // after them: it has a nurse at the door, they have none.
    const statuses = await page.locator('#open-orders li[data-order-id]').evaluateAll((lis) => lis.map((li) => li.dataset.status));
    const rank = { escalated: 0, pending: 1, offered: 1, assigned: 2, en_route: 3, arrived: 4, in_service: 5 };
    const ranks = statuses.map((st) => rank[st]);
    assert.deepEqual(ranks, [...ranks].sort((x, y) => x - y), `by urgency: ${statuses.join(', ')}`);
    assert.equal(statuses[statuses.length - 1], 'in_service');
    assert.ok(statuses.indexOf('pending') < statuses.indexOf('in_service'));
  });

  test('shows the resident\'s rating to the coordinator', async () => {
    await platform.ok('POST', `/v1/nurse/orders/${riding}/record`, nurses.near.token, {
      values: { temperature_c: 36.8, pulse: 128, spo2: 98, bilirubin_mg_dl: 9.2 },
      notes: '皮肤轻度黄染，两天后复测',
    });
    await platform.ok('POST', `/v1/nurse/orders/${riding}/progress`, nurses.near.token, { step: 'completed' });
    await page.locator(listItem(riding)).waitFor({ state: 'detached' });
    await platform.ok('POST', `/v1/orders/${riding}/rating`, placedBy.get(riding), { stars: 4, comment: '护士很专业，准时到达' });
    const seen = await platform.ok('GET', `/v1/dispatch/orders/${riding}`, coordinator);
    assert.equal(seen.rating.stars, 4);
    assert.equal(seen.rating.comment, '护士很专业，准时到达');
    assert.ok(seen.rating.rated_at, 'when it was rated');

    // In the orders tab, the completed order's detail shows it.
    await page.locator('#tabs .tab[data-view="orders"]').click();
    const row = page.locator(`#orders-table tr[data-order-id="${riding}"]`);
    await row.locator('.short-id', { hasText: shortOf(riding) }).waitFor();
    await row.click();
    const rating = page.locator(`#drawer[data-order-id="${riding}"] .rating[data-stars="4"]`);
    await rating.waitFor();
    assert.equal(await rating.locator('.stars').textContent(), '★★★★☆');
    assert.match(await rating.textContent(), /护士很专业，准时到达/);
    // Today's rating on the KPI strip (refreshed every 15 s).
    await page.locator('.kpi-rating .kpi-value', { hasText: '4.0' }).waitFor({ timeout: 25000 });
    await page.keyboard.press('Escape');
    await page.locator('#tabs .tab[data-view="map"]').click();
  });

  test('cancels an order from the page', async () => {
    const order = await placeOrder({ lat: 29.37, lng: 106.3 }, 'infant_jaundice_test', '双福街道 九龙大道 3 号');
    await page.locator(listItem(order)).click();
    const drawer = page.locator(`#drawer[data-order-id="${order}"]`);
    await drawer.locator('input[name="reason"]').fill('家属来电取消');
    await drawer.locator('button.cancel-order').click();
    await page.locator(`#drawer[data-status="cancelled"]`).waitFor();
    const seen = await platform.ok('GET', `/v1/dispatch/orders/${order}`, coordinator);
    assert.equal(seen.status, 'cancelled');
    assert.equal(seen.cancel_reason, '家属来电取消');
    await page.locator(listItem(order)).waitFor({ state: 'detached' });
    await page.keyboard.press('Escape');
  });

  test('saves a screenshot of the live map', async () => {
    // A little more life on the map: an order far from every free nurse.
    await placeOrder({ lat: 29.425, lng: 106.3 }, 'wound_care', '双福街道 双福大道 200 号');
    await placeOrder({ lat: 29.366, lng: 106.345 }, 'infant_jaundice_test', '双福街道 滨江路 12 号');
    await page.locator('#open-orders li[data-order-id]').nth(4).waitFor();
    if (await page.locator('#drawer').isVisible()) await page.keyboard.press('Escape');
    await page.locator('#drawer').waitFor({ state: 'hidden' });
    await page.waitForTimeout(1500);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png') });
  });

  test('reconnects by itself when the platform restarts', async () => {
    await platform.restart();
    // The feed drops and comes back without a reload…
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: 45000 });
    // …and what happens afterwards shows up live.
    const order = await placeOrder({ lat: 29.4, lng: 106.31 });
    await page.locator(listItem(order)).waitFor();
  });

  test('screens orders in the review tab: approve and reject with a reason', async () => {
    // Always screened (pressure-ulcer care), and screened for its answers.
    const ulcer = await placeOrder(HOME, 'pressure_ulcer_care');
    const risky = await placeOrder(HOME, 'infant_jaundice_test', '双福街道 南北大道 9 号', {
      answers: { anticoagulants: true, allergies: '青霉素' },
    });
    await page.locator('#tabs .tab[data-view="reviews"]').click();
    const card = (id) => page.locator(`.review-card[data-order-id="${id}"]`);
    await card(ulcer).waitFor();
    await card(risky).waitFor();
    await page.locator('#tab-reviews', { hasText: '审核 (2)' }).waitFor();
    const flags = await card(risky).locator('.review-flags').textContent();
    assert.match(flags, /服用抗凝药/);
    assert.match(flags, /过敏史/);
    assert.match(await card(risky).locator('.review-answers').textContent(), /青霉素/);
    assert.match(await card(ulcer).locator('.review-waiting').textContent(), /已等待 \d+ 分钟/);
    // The buttons are big enough to hit.
    const box = await card(ulcer).locator('.review-approve').boundingBox();
    assert.ok(box.height >= 48, `approve button ${box.height}px high`);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-reviews.png') });

    await card(ulcer).locator('.review-approve').click();
    await card(ulcer).waitFor({ state: 'detached' });
    const approved = await platform.ok('GET', `/v1/dispatch/orders/${ulcer}`, coordinator);
    assert.notEqual(approved.status, 'awaiting_review');
    assert.ok(approved.clinical.reviewed_by, 'who approved is kept');

    // No reason, no rejection.
    await card(risky).locator('.review-reject').click();
    await page.locator('.toast', { hasText: '请填写拒绝原因' }).waitFor();
    await card(risky).locator('.review-reason').fill('正在服用抗凝药，请先咨询主治医生');
    await card(risky).locator('.review-reject').click();
    await card(risky).waitFor({ state: 'detached' });
    const rejected = await platform.ok('GET', `/v1/orders/${risky}`, placedBy.get(risky));
    assert.equal(rejected.status, 'rejected');
    assert.equal(rejected.review_reason, '正在服用抗凝药，请先咨询主治医生');
    await page.locator('.review-empty').waitFor();
    await page.locator('#tabs .tab[data-view="map"]').click();
  });

  test('switches to English and keeps the choice and the session', async () => {
    await page.selectOption('#lang', 'en');
    assert.equal(await page.locator('#tabs .tab.active').textContent(), 'Live map');
    await page.reload();
    await page.locator('#main').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#tabs .tab.active').textContent(), 'Live map');
    await page.locator('#tabs .tab[data-view="roster"]').click();
    await page.locator(`#roster-table tr[data-nurse-id="${nurses.near.id}"]`).waitFor();
    await page.locator('#add-nurse').waitFor({ state: 'visible' });
  });

  test('manages the roster: add, edit skills, deactivate', async () => {
    await page.fill('#add-nurse input[name="name"]', '赵新');
    await page.fill('#add-nurse input[name="phone"]', '13600002222');
    // The picker names the skills in words.
    assert.match(await page.locator('#add-skills label', { has: page.locator('input[value="wound_care"]') }).textContent(), /Wound care/);
    await page.check('#add-skills input[value="wound_care"]');
    await page.click('#add-nurse button[type="submit"]');
    const row = page.locator('#roster-table tr', { hasText: '赵新' });
    await row.waitFor();
    const id = await row.getAttribute('data-nurse-id');
    let roster = await platform.ok('GET', '/v1/dispatch/nurses', coordinator);
    assert.deepEqual(roster.find((n) => n.id === id).skills, ['wound_care']);

    await row.locator('button.edit-skills').click();
    await row.locator('input[value="catheter"]').check();
    await row.locator('form.skill-edit button[type="submit"]').click();
    await row.locator('form.skill-edit').waitFor({ state: 'detached' });
    await row.locator('.skill-chip[data-skill="catheter"]', { hasText: 'Urinary catheter care' }).waitFor();
    assert.equal(await row.locator('.skill-chip[data-skill="wound_care"]').textContent(), 'Wound care');
    roster = await platform.ok('GET', '/v1/dispatch/nurses', coordinator);
    assert.deepEqual(roster.find((n) => n.id === id).skills, ['catheter', 'wound_care']);

    await page.locator(`#roster-table tr[data-nurse-id="${id}"] button.deactivate`).click();
    await page.locator(`#roster-table tr[data-nurse-id="${id}"] button.activate`).waitFor();
    roster = await platform.ok('GET', '/v1/dispatch/nurses', coordinator);
    assert.equal(roster.find((n) => n.id === id).active, false);
  });

  test('enters and verifies credentials, lists expiring certificates and the audit trail', async () => {
    const fresh = await platform.ok('POST', '/v1/dispatch/nurses', coordinator, { name: '钱资质', phone: '13600003333', skills: ['picc'] });
    // A nurse added through the API is no live event: read the roster again.
    await page.reload();
    await page.locator('#main').waitFor({ state: 'visible' });
    await page.locator('#tabs .tab[data-view="roster"]').click();
    const row = page.locator(`#roster-table tr[data-nurse-id="${fresh.id}"]`);
    await row.waitFor();
    await row.locator('button.credentials.cred-none').click();
    const card = page.locator('#credentials');
    await card.locator('[data-verification="none"]').waitFor();
    await card.locator('input[name="licence_no"]').fill('202011000777');
    await card.locator('input[name="first_registered_on"]').fill('2014-09-01');
    await card.locator('select[name="title"]').selectOption('supervisor_nurse');
    await card.locator('button.add-cert').click();
    const cert = card.locator('.cert-row').first();
    await cert.locator('select').selectOption('picc');
    await cert.locator('input').nth(0).fill('PICC-2024-0777');
    await cert.locator('input[type="date"]').nth(0).fill('2024-01-10');
    const soon = new Date(Date.now() + 10 * 86400000).toISOString().slice(0, 10);
    await cert.locator('input[type="date"]').nth(1).fill(soon);
    await card.locator('button.save-cred').click();
    await card.locator('[data-verification="pending"]').waitFor();
    let saved = await platform.ok('GET', `/v1/dispatch/nurses/${fresh.id}/credentials`, coordinator);
    assert.equal(saved.verification, 'pending');
    assert.equal(saved.certificates[0].number, 'PICC-2024-0777');

    await card.locator('button.verify-cred').click();
    await card.locator('[data-verification="verified"]').waitFor();
    saved = await platform.ok('GET', `/v1/dispatch/nurses/${fresh.id}/credentials`, coordinator);
    assert.equal(saved.verification, 'verified');
    // The page signed in through its dev button, as 'dashboard-dev': it is the reviewer.
    assert.equal(saved.reviewed_by, 'dashboard-dev');

    // The certificate expiring in 10 days is listed; the audit trail has the change and the verification.
    await page.locator(`#expiring li[data-nurse-id="${fresh.id}"][data-cert="picc"]`).waitFor();
    await page.locator(`#audit li[data-action="credentials_verified"][data-subject="${fresh.id}"]`).waitFor();
    await page.locator(`#audit li[data-action="credentials_changed"][data-subject="${fresh.id}"]`).waitFor();
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'governance.png'), fullPage: true });
    await page.setViewportSize({ width: 360, height: 740 });
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(ARTIFACTS, 'governance-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1440, height: 900 });
  });

  test('signs out and refuses a token that is not a coordinator\'s', async () => {
    await page.click('#signout');
    await page.locator('#signin').waitFor({ state: 'visible' });
    const resident = await platform.token('resident', 'not-a-coordinator');
    await page.fill('#token-input', resident);
    await page.click('#token-form button[type="submit"]');
    await page.locator('#signin-error', { hasText: 'resident' }).waitFor();
    // A token in the URL fragment (the identity provider's redirect) signs in.
    await page.goto(`${platform.baseUrl}/dashboard#token=${coordinator}`);
    await page.locator('#main').waitFor({ state: 'visible' });
    assert.equal(new URL(page.url()).hash, '', 'the token is taken out of the address bar');
  });

  test('ran without script errors', () => {
    // A failed resource load would show here too (CSP violations included).
    // The restart test makes the page lose its server for a moment; that is expected.
    assert.deepEqual(consoleErrors.filter((e) => !/WebSocket|ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE/.test(e)), []);
  });
});
