// Small pure helpers of the resident app: money, times, statuses.

/** Statuses from which the resident may still cancel (until the visit starts). */
export const CANCELLABLE = new Set([
  'pending', 'scheduled', 'awaiting_review', 'offered', 'assigned', 'en_route', 'arrived', 'escalated',
]);
/** Statuses after which nothing changes any more. */
export const FINAL = new Set(['completed', 'cancelled', 'rejected']);

export function money(cents) {
  return `¥${(cents / 100).toFixed(cents % 100 === 0 ? 0 : 2)}`;
}

export function hhmm(iso) {
  const d = new Date(iso);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

export function dayAndTime(iso) {
  const d = new Date(iso);
  return `${d.getMonth() + 1}/${d.getDate()} ${hhmm(iso)}`;
}

/** Whole minutes from now until `iso` (at least 0). */
export function minutesUntil(iso, now = Date.now()) {
  return Math.max(0, Math.ceil((new Date(iso).getTime() - now) / 60000));
}
