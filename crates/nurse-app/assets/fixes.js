// Position fixes between the browser's geolocation and the socket: a
// bounded, time-ordered buffer that keeps what was taken while offline and
// hands it out oldest first, in batches the server accepts.

/** A fix as the server takes it, from a browser `GeolocationPosition`. */
export function toFix(position) {
  const c = position.coords;
  return {
    lat: c.latitude,
    lng: c.longitude,
    accuracy_m: Math.max(0, Number.isFinite(c.accuracy) ? c.accuracy : 0),
    ts: new Date(position.timestamp || Date.now()).toISOString(),
  };
}

export class FixBuffer {
  /** @param {number} max most fixes kept; past it the oldest are dropped */
  constructor(max = 720) {
    this.max = max;
    this.fixes = [];
    this.dropped = 0;
    this.lastTs = 0;
  }

  get size() {
    return this.fixes.length;
  }

  /**
   * Adds a fix if it is newer than every fix seen (the server ignores older
   * ones anyway, and the trail keeps its order). Returns whether it was kept.
   */
  push(fix) {
    const ts = Date.parse(fix.ts);
    if (!Number.isFinite(ts) || ts <= this.lastTs) return false;
    this.lastTs = ts;
    this.fixes.push(fix);
    while (this.fixes.length > this.max) {
      this.fixes.shift();
      this.dropped += 1;
    }
    return true;
  }

  /** The oldest `n` fixes, still held (call `drop(n)` once sent). */
  peek(n) {
    return this.fixes.slice(0, n);
  }

  drop(n) {
    this.fixes.splice(0, n);
  }
}

/** "12 s", "3 min", "2 h" — the age of the last fix for the status line. */
export function ageText(ms, lang = 'zh') {
  if (!Number.isFinite(ms) || ms < 0) ms = 0;
  const s = Math.floor(ms / 1000);
  if (s < 60) return lang === 'zh' ? `${s} 秒` : `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return lang === 'zh' ? `${m} 分钟` : `${m} min`;
  const h = Math.floor(m / 60);
  return lang === 'zh' ? `${h} 小时` : `${h} h`;
}
