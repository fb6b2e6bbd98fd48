// The app's pure rules: which step comes next, countdowns, distances.
// No DOM, no network: tested alone (tests/browser/nurse.test.js).

/** The visit steps in order, with the order status each leads to. */
export const STEPS = [
  { step: 'en_route', status: 'en_route', from: 'assigned' },
  { step: 'arrived', status: 'arrived', from: 'en_route' },
  { step: 'started', status: 'in_service', from: 'arrived' },
  { step: 'completed', status: 'completed', from: 'in_service' },
];

/** The step a job at `status` can take next, or null (done or not ours). */
export function nextStep(status) {
  const s = STEPS.find((x) => x.from === status);
  return s ? s.step : null;
}

/** How many steps a job at `status` has done (0..4). */
export function stepsDone(status) {
  if (status === 'assigned') return 0;
  const i = STEPS.findIndex((x) => x.status === status);
  return i < 0 ? 0 : i + 1;
}

/** Whole seconds left until `expiresAt` (ISO), never negative. */
export function secondsLeft(expiresAt, now = Date.now()) {
  const t = Date.parse(expiresAt);
  if (!Number.isFinite(t)) return 0;
  return Math.max(0, Math.ceil((t - now) / 1000));
}

/** 850 → "850 m", 2400 → "2.4 km". */
export function distanceText(m) {
  if (!Number.isFinite(m) || m < 0) return '—';
  return m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(1)} km`;
}

/** Age in whole years from a birth year. */
export function age(birthYear, now = new Date()) {
  const y = Number(birthYear);
  return Number.isInteger(y) && y > 1900 ? now.getFullYear() - y : null;
}

/** Reconnect delay after `attempt` failures: exponential, capped, jittered (×0.5–1.5). */
export function backoff(attempt, random = Math.random, baseMs = 1000, capMs = 15000) {
  const raw = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt));
  return Math.round(raw * (0.5 + random()));
}
