// The phone's socket (`/v1/nurse/ws`): connects, reconnects by itself with
// exponential back-off and jitter, and sends the buffered fixes, oldest
// first, in `locations` frames whenever it is open.

import { backoff } from './state.js';

/** Close codes after which reconnecting is pointless. */
const REPLACED = 4001; // a newer connection of this nurse (another tab or phone)
const DEACTIVATED = 4003; // taken off the roster

export class NurseSocket {
  /**
   * @param {object} o
   * @param {() => string} o.url the socket URL (with `?token=`)
   * @param {import('./fixes.js').FixBuffer} o.buffer fixes waiting to be sent
   * @param {number} o.maxBatch most fixes in one frame
   * @param {(frame: object) => void} o.onFrame every frame the server sends
   * @param {(state: string, attempts: number) => void} o.onState connection state changes
   */
  constructor({ url, buffer, maxBatch, onFrame, onState }) {
    this.url = url;
    this.buffer = buffer;
    this.maxBatch = Math.max(1, maxBatch || 100);
    this.onFrame = onFrame;
    this.onState = onState;
    this.ws = null;
    this.attempts = 0;
    this.timer = null;
    this.stopped = true;
    this.state = 'off';
    this.onOnline = () => this.reconnectNow();
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.timer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.close(1000);
    }
    this.setState('off');
  }

  get open() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  setState(state) {
    this.state = state;
    if (this.onState) this.onState(state, this.attempts);
  }

  connect() {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.setState('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (_) {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempts = 0;
      this.setState('live');
      this.flush();
    };
    ws.onmessage = (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      if (this.onFrame) this.onFrame(frame);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (ev.code === REPLACED) {
        this.stopped = true;
        this.setState('replaced');
      } else if (ev.code === DEACTIVATED) {
        this.stopped = true;
        this.setState('deactivated');
      } else {
        this.retry();
      }
    };
    ws.onerror = () => {
      // onclose follows and schedules the retry.
    };
  }

  retry() {
    if (this.stopped) return;
    const delay = backoff(this.attempts);
    this.attempts += 1;
    this.setState('offline');
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Back online (the browser says so, or the user asked): try at once. */
  reconnectNow() {
    if (this.stopped || this.open || (this.ws && this.ws.readyState === WebSocket.CONNECTING)) return;
    this.attempts = 0;
    this.connect();
  }

  /** Sends a frame if the socket is open; false otherwise. */
  send(frame) {
    if (!this.open) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch (_) {
      return false;
    }
  }

  /** Sends every buffered fix, oldest first, while the socket is open. */
  flush() {
    while (this.open && this.buffer.size > 0) {
      const batch = this.buffer.peek(this.maxBatch);
      if (!this.send({ type: 'locations', fixes: batch })) return;
      this.buffer.drop(batch.length);
    }
  }
}
