// The coordinator's live feed (`GET /v1/dispatch/live`, token as `?token=`:
// browsers cannot set headers on a WebSocket). Reconnects by itself with
// exponential back-off and jitter (1 s doubling to 30 s), resetting once a
// connection has held for a while.

const MIN_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;
const HEALTHY_AFTER_MS = 10000;

export class LiveFeed {
  /**
   * @param {() => string|null} token the current token
   * @param {(frame: object) => void} onFrame each JSON frame
   * @param {(state: 'connecting'|'live'|'offline', info?: object) => void} onState
   */
  constructor(token, onFrame, onState) {
    this.token = token;
    this.onFrame = onFrame;
    this.onState = onState;
    this.socket = null;
    this.timer = null;
    this.delay = MIN_DELAY_MS;
    this.stopped = true;
    this.openedAt = 0;
  }

  url() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/v1/dispatch/live?token=${encodeURIComponent(this.token() || '')}`;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.socket) {
      const s = this.socket;
      this.socket = null;
      s.onclose = null;
      s.close(1000, 'bye');
    }
  }

  connect() {
    if (this.stopped) return;
    this.onState('connecting');
    let socket;
    try {
      socket = new WebSocket(this.url());
    } catch (_) {
      this.retry();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.openedAt = Date.now();
      this.onState('live');
    };
    socket.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      this.onFrame(frame);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.openedAt && Date.now() - this.openedAt > HEALTHY_AFTER_MS) this.delay = MIN_DELAY_MS;
      this.openedAt = 0;
      this.onState('offline', { code: event.code });
      this.retry();
    };
  }

  retry() {
    if (this.stopped) return;
    const wait = this.delay * (0.75 + Math.random() * 0.5);
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), wait);
  }
}
