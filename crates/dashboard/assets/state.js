// The dashboard's rules, pure (no DOM, no clock: `now` in ms is passed in),
// so the browser tests can check them alone too.

/** Every order status. */
export const STATUSES = [
  'awaiting_review', 'scheduled', 'pending', 'offered', 'escalated', 'assigned', 'en_route', 'arrived', 'in_service',
  'completed', 'cancelled', 'rejected',
];
/** Neither completed, cancelled nor rejected. */
export const OPEN = ['awaiting_review', 'scheduled', 'pending', 'offered', 'escalated', 'assigned', 'en_route', 'arrived', 'in_service'];
/** Still waiting for a nurse: a coordinator may assign one. */
export const WAITING = ['pending', 'offered', 'escalated'];
/** The nurse has not reached the door yet: the promise still counts down. */
export const AWAITING = ['pending', 'offered', 'escalated', 'assigned', 'en_route'];
/** Cancellable until the visit starts. */
export const CANCELLABLE = ['awaiting_review', 'scheduled', 'pending', 'offered', 'escalated', 'assigned', 'en_route', 'arrived'];
/** A nurse holding one of these is busy. */
export const WORKING = ['assigned', 'en_route', 'arrived', 'in_service'];

/** An order with no nurse and fewer minutes than this left is at risk (as the server rules). */
export const AT_RISK_MINUTES = 10;

const ms = (iso) => (iso ? Date.parse(iso) : NaN);

/**
 * How the order stands against its promise at `now`:
 * `done` (reached or over), `late` (past `promised_by`, or the predicted
 * arrival is after it), `risk` (escalated, or no nurse with under 10
 * minutes left), `ok`. `left` is ms to `promised_by` (negative once late).
 */
export function orderRisk(order, now) {
  const promised = ms(order.promised_by);
  const left = promised - now;
  if (!AWAITING.includes(order.status)) return { level: 'done', left, predictedLate: false };
  const eta = ms(order.eta);
  const predictedLate = Number.isFinite(eta) && eta > promised;
  if (left < 0 || predictedLate) return { level: 'late', left, predictedLate };
  if (order.status === 'escalated' || (!order.nurse_id && left < AT_RISK_MINUTES * 60000)) {
    return { level: 'risk', left, predictedLate };
  }
  return { level: 'ok', left, predictedLate };
}

/** `12:05`, `1:02:09`: the magnitude of a duration in ms, rounded down to seconds. */
export function clock(durationMs) {
  const total = Math.floor(Math.abs(durationMs) / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const two = (n) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${two(m)}:${two(s)}`;
}

/** Nurse ids with an open offer among `orders`. */
export function offeredNurses(orders) {
  const out = new Set();
  for (const o of orders) {
    for (const offer of o.offers || []) {
      if (offer.status === 'open') out.add(offer.nurse_id);
    }
  }
  return out;
}

/** Nurse id → the order they work on, among `orders`. */
export function jobs(orders) {
  const out = new Map();
  for (const o of orders) {
    if (o.nurse_id && WORKING.includes(o.status)) out.set(o.nurse_id, o.id);
  }
  return out;
}

/** Whether the nurse's latest fix is missing or older than the limit. */
export function isStale(nurse, staleAfterSecs, now) {
  const at = ms(nurse.position && nurse.position.recorded_at);
  return !Number.isFinite(at) || now - at > staleAfterSecs * 1000;
}

/**
 * The nurse's state on the map: `inactive`, `off_shift`, `busy` (a job),
 * `offered` (an open offer), `stale` (on shift, no fresh fix) or `free`.
 */
export function nurseState(nurse, ctx, now) {
  if (!nurse.active) return 'inactive';
  if (nurse.shift !== 'on') return 'off_shift';
  if (nurse.current_order_id || ctx.jobs.has(nurse.id)) return 'busy';
  if (ctx.offered.has(nurse.id)) return 'offered';
  if (isStale(nurse, ctx.staleAfterSecs, now)) return 'stale';
  return 'free';
}

/** The order after an `offer` frame of the live feed (offers kept by id, oldest first). */
export function withOffer(order, frame) {
  const offers = (order.offers || []).map((o) => ({ ...o }));
  const existing = offers.find((o) => o.id === frame.offer_id);
  if (existing) {
    existing.status = frame.status;
    if (frame.reason && frame.status === 'declined') existing.decline_reason = frame.reason;
    if (frame.at && frame.status !== 'open') existing.answered_at = frame.at;
  } else {
    offers.push({
      id: frame.offer_id,
      nurse_id: frame.nurse_id,
      status: frame.status,
      created_at: frame.at,
      expires_at: frame.expires_at || null,
      answered_at: frame.status === 'open' ? null : frame.at,
      eta_min: frame.eta_min ?? null,
      distance_m: frame.distance_m ?? null,
      decline_reason: frame.status === 'declined' ? frame.reason || null : null,
    });
  }
  return { ...order, offers };
}

/**
 * The short id shown for an order or a nurse: the last 8 hex digits of the
 * UUID. Ids are UUIDv7, whose first digits are a timestamp (every order of
 * the same minute would look alike); the tail is random.
 */
export function shortId(id) {
  if (!id) return '';
  const hex = String(id).replace(/-/g, '');
  return hex.slice(-8);
}

/** Orders with a nurse, by how far along they are: the earlier the step, the more a coordinator may still act. */
const WITH_NURSE = ['assigned', 'en_route', 'arrived', 'in_service'];

/**
 * How urgent an open order is, lower first: 0 escalated or at risk (late,
 * predicted late, no nurse and under 10 minutes left), 1 waiting for a
 * nurse (pending, offered), 2 to 5 with a nurse (assigned, en route,
 * arrived, in service); 6 for orders that are over.
 */
export function urgency(order, now) {
  if (!OPEN.includes(order.status)) return 6;
  const risk = orderRisk(order, now);
  if (order.status === 'escalated' || risk.level === 'risk' || risk.level === 'late') return 0;
  if (WAITING.includes(order.status)) return 1;
  return 2 + WITH_NURSE.indexOf(order.status);
}

/**
 * Open orders by urgency ([`urgency`]), the earliest promise first within
 * a rank; then the orders that are over, newest first.
 */
export function sortOrders(orders, now) {
  const rank = new Map(orders.map((o) => [o.id, urgency(o, now)]));
  return [...orders].sort((a, b) => {
    const ra = rank.get(a.id);
    const rb = rank.get(b.id);
    if (ra !== rb) return ra - rb;
    if (ra < 6) return ms(a.promised_by) - ms(b.promised_by) || String(a.id).localeCompare(String(b.id));
    return ms(b.created_at) - ms(a.created_at) || String(a.id).localeCompare(String(b.id));
  });
}

/** A skill code in words, from the catalogue's skill names; the code itself when unnamed. */
export function skillName(code, names, language) {
  const n = names && names.get(code);
  if (!n) return code;
  return (language === 'zh' ? n.name_zh : n.name_en) || code;
}

/** `★★★★☆`: a rating of 1 to 5 stars. */
export function stars(n) {
  const k = Math.max(0, Math.min(5, Math.round(Number(n) || 0)));
  return '★'.repeat(k) + '☆'.repeat(5 - k);
}

/** Cells short of nurses (waiting orders above free nurses), worst first. */
export function shortCells(cells) {
  return cells
    .filter((c) => c.waiting_orders > c.free_nurses)
    .sort((a, b) => (b.waiting_orders - b.free_nurses) - (a.waiting_orders - a.free_nurses));
}
