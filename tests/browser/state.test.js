// The dashboard's pure rules (crates/dashboard/assets/state.js), alone:
// loaded as the browser loads it, an ES module, through a data: URL so no
// package.json is needed beside the assets.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const here = import.meta.dirname ?? new URL('.', import.meta.url).pathname;
const source = readFileSync(join(here, '..', '..', 'crates', 'dashboard', 'assets', 'state.js'), 'utf8');
const S = await import(`data:text/javascript,${encodeURIComponent(source)}`);

const NOW = Date.parse('2025-03-01T08:00:00Z');
const iso = (offsetMin) => new Date(NOW + offsetMin * 60000).toISOString();

test('orders against their promise', () => {
  const base = { status: 'assigned', promised_by: iso(20), nurse_id: 'n1', eta: iso(10) };
  assert.equal(S.orderRisk(base, NOW).level, 'ok');
  assert.equal(S.orderRisk({ ...base, eta: iso(25) }, NOW).level, 'late', 'predicted late is red');
  assert.equal(S.orderRisk({ ...base, eta: iso(25) }, NOW).predictedLate, true);
  assert.equal(S.orderRisk({ ...base, promised_by: iso(-1) }, NOW).level, 'late');
  assert.equal(S.orderRisk({ ...base, status: 'escalated', nurse_id: null, eta: null }, NOW).level, 'risk');
  assert.equal(S.orderRisk({ status: 'pending', promised_by: iso(9), eta: null, nurse_id: null }, NOW).level, 'risk');
  assert.equal(S.orderRisk({ status: 'pending', promised_by: iso(11), eta: null, nurse_id: null }, NOW).level, 'ok');
  assert.equal(S.orderRisk({ ...base, status: 'arrived', promised_by: iso(-5) }, NOW).level, 'done');
  assert.equal(S.orderRisk(base, NOW).left, 20 * 60000);
});

test('clock', () => {
  assert.equal(S.clock(0), '00:00');
  assert.equal(S.clock(29 * 60000 + 59999), '29:59');
  assert.equal(S.clock(-(65 * 1000)), '01:05');
  assert.equal(S.clock(3723 * 1000), '1:02:03');
});

test('nurse states', () => {
  const fresh = { lat: 29.39, lng: 106.32, recorded_at: iso(-0.5) };
  const old = { lat: 29.39, lng: 106.32, recorded_at: iso(-5) };
  const orders = [
    { id: 'o1', status: 'en_route', nurse_id: 'busy', offers: [] },
    { id: 'o2', status: 'offered', nurse_id: null, offers: [{ nurse_id: 'asked', status: 'open' }, { nurse_id: 'no', status: 'declined' }] },
    { id: 'o3', status: 'completed', nurse_id: 'done', offers: [] },
  ];
  const ctx = { jobs: S.jobs(orders), offered: S.offeredNurses(orders), staleAfterSecs: 60 };
  const nurse = (id, extra = {}) => ({ id, active: true, shift: 'on', position: fresh, current_order_id: null, ...extra });
  assert.equal(S.nurseState(nurse('busy'), ctx, NOW), 'busy');
  assert.equal(S.nurseState(nurse('asked'), ctx, NOW), 'offered');
  assert.equal(S.nurseState(nurse('no'), ctx, NOW), 'free');
  assert.equal(S.nurseState(nurse('done'), ctx, NOW), 'free');
  assert.equal(S.nurseState(nurse('x', { position: old }), ctx, NOW), 'stale');
  assert.equal(S.nurseState(nurse('x', { position: null }), ctx, NOW), 'stale');
  assert.equal(S.nurseState(nurse('x', { shift: 'off' }), ctx, NOW), 'off_shift');
  assert.equal(S.nurseState(nurse('x', { active: false }), ctx, NOW), 'inactive');
  assert.equal(S.nurseState(nurse('x', { current_order_id: 'o9' }), ctx, NOW), 'busy');
});

test('offer frames update the order', () => {
  const order = { id: 'o1', offers: [] };
  const made = S.withOffer(order, { offer_id: 'f1', order_id: 'o1', nurse_id: 'n1', status: 'open', at: iso(0), expires_at: iso(0.5), eta_min: 7, distance_m: 2100 });
  assert.equal(order.offers.length, 0, 'the old order is not changed');
  assert.deepEqual(made.offers.map((o) => [o.id, o.status, o.eta_min]), [['f1', 'open', 7]]);
  const declined = S.withOffer(made, { offer_id: 'f1', order_id: 'o1', nurse_id: 'n1', status: 'declined', reason: '太远', at: iso(0.2) });
  assert.deepEqual(declined.offers.map((o) => [o.status, o.decline_reason, o.answered_at]), [['declined', '太远', iso(0.2)]]);
});

test('urgent open orders first, then the rest newest first', () => {
  const list = S.sortOrders([
    { id: 'done-old', status: 'completed', created_at: iso(-60), promised_by: iso(-30) },
    { id: 'later', status: 'pending', created_at: iso(0), promised_by: iso(30) },
    { id: 'done-new', status: 'cancelled', created_at: iso(-10), promised_by: iso(20) },
    { id: 'sooner', status: 'assigned', nurse_id: 'n1', created_at: iso(-20), promised_by: iso(10) },
  ], NOW);
  // Waiting for a nurse comes before having one, whatever the promise.
  assert.deepEqual(list.map((o) => o.id), ['later', 'sooner', 'done-new', 'done-old']);
});

test('the open list by urgency: escalated and at risk, waiting by promise, then with a nurse by step', () => {
  const o = (id, status, promisedMin, extra = {}) => ({
    id, status, created_at: iso(promisedMin - 30), promised_by: iso(promisedMin), nurse_id: null, eta: null, ...extra,
  });
  const shuffled = [
    o('serving', 'in_service', -5, { nurse_id: 'n1' }),
    o('riding', 'en_route', 20, { nurse_id: 'n2', eta: iso(10) }),
    o('waiting-late-promise', 'pending', 28),
    o('escalated', 'escalated', 25),
    o('waiting-soon', 'offered', 15),
    o('accepted', 'assigned', 22, { nurse_id: 'n3', eta: iso(12) }),
    o('at-door', 'arrived', 5, { nurse_id: 'n4' }),
    o('no-nurse-8-min', 'pending', 8),
    o('predicted-late', 'en_route', 18, { nurse_id: 'n5', eta: iso(21) }),
    o('over', 'completed', -40, { nurse_id: 'n6' }),
  ];
  const ids = S.sortOrders(shuffled, NOW).map((x) => x.id);
  assert.deepEqual(ids, [
    // At risk, earliest promise first: no nurse with 8 minutes left, predicted late, escalated.
    'no-nurse-8-min', 'predicted-late', 'escalated',
    // Waiting for a nurse, by time to promise.
    'waiting-soon', 'waiting-late-promise',
    // With a nurse, by step: assigned, en route, arrived, in service.
    'accepted', 'riding', 'at-door', 'serving',
    'over',
  ]);
  assert.ok(ids.indexOf('serving') > ids.indexOf('escalated'), 'in service below escalated');
  assert.equal(S.urgency(shuffled[3], NOW), 0);
  assert.equal(S.urgency(shuffled[0], NOW), 5);
});

test('short ids come from the random tail of the UUID', () => {
  // Two UUIDv7 of the same millisecond share their first 12 digits.
  const a = '019ad7a1-2b3c-7d4e-8f10-1a2b3c4d5e6f';
  const b = '019ad7a1-2b3c-7d4e-9a20-ffeeddccbbaa';
  assert.equal(S.shortId(a), '3c4d5e6f');
  assert.equal(S.shortId(b), 'ddccbbaa');
  assert.notEqual(S.shortId(a), S.shortId(b));
  assert.equal(S.shortId(null), '');
});

test('skills in words, stars', () => {
  const names = new Map([['wound_care', { code: 'wound_care', name_zh: '伤口护理', name_en: 'Wound care' }]]);
  assert.equal(S.skillName('wound_care', names, 'zh'), '伤口护理');
  assert.equal(S.skillName('wound_care', names, 'en'), 'Wound care');
  assert.equal(S.skillName('unknown_skill', names, 'zh'), 'unknown_skill', 'an unnamed code is shown as it is');
  assert.equal(S.stars(4), '★★★★☆');
  assert.equal(S.stars(1), '★☆☆☆☆');
});

test('cells short of nurses, worst first', () => {
  const cells = [
    { cell: 'a', free_nurses: 1, waiting_orders: 1 },
    { cell: 'b', free_nurses: 0, waiting_orders: 1 },
    { cell: 'c', free_nurses: 0, waiting_orders: 3 },
    { cell: 'd', free_nurses: 2, waiting_orders: 0 },
  ];
  assert.deepEqual(S.shortCells(cells).map((c) => c.cell), ['c', 'b']);
});
