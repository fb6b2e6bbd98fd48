// The one-key alarm (SOS) and the lone-worker check-in (issue 17).
//
// The red SOS button lives in the header while signed in. It needs a
// deliberate act, but a fast one: hold it for a second (a ring fills), or
// tap it twice within three seconds. The alarm goes to every coordinator
// of the organisation with the latest position; its state (sent, taken by
// a coordinator, resolved) shows next to the button. When the lone-worker
// timer runs out the server sends `check_in_due`: a full-screen prompt
// with one big button answers it.

import { t } from './i18n.js';
import { ring } from './alert.js';

const HOLD_MS = 1000;
const SECOND_TAP_MS = 3000;

export class Safety {
  /**
   * @param {object} o
   * @param {import('./api.js').Api} o.api
   * @param {() => object|null} o.position the latest fix `{lat, lng, accuracy_m}`, or null
   */
  constructor({ api, position }) {
    this.api = api;
    this.position = position;
    this.alarm = null; // the latest unresolved alarm {id, kind, state}
    this.due = null; // {order_id, by}
    this.armedUntil = 0;
    this.holdTimer = null;
    this.held = false;
    this.sending = false;
    this.slot = document.getElementById('sos-slot');
    this.prompt = document.getElementById('checkin');
    this.build();
  }

  build() {
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.id = 'sos';
    btn.className = 'sos';
    btn.setAttribute('aria-describedby', 'sos-state');
    const label = document.createElement('span');
    label.className = 'sos-label';
    btn.append(label);
    const state = document.createElement('span');
    state.id = 'sos-state';
    state.className = 'sos-state';
    state.setAttribute('role', 'status');
    this.btn = btn;
    this.label = label;
    this.stateEl = state;
    btn.addEventListener('pointerdown', (ev) => this.holdStart(ev));
    for (const e of ['pointerup', 'pointerleave', 'pointercancel']) btn.addEventListener(e, () => this.holdEnd());
    btn.addEventListener('click', () => this.tap());
    btn.addEventListener('contextmenu', (ev) => ev.preventDefault());
    document.getElementById('checkin-ok').addEventListener('click', () => this.checkIn());
  }

  /** Signed in: the button shows, with any alarm still open. */
  async start() {
    this.slot.replaceChildren(this.btn, this.stateEl);
    this.render();
    try {
      const open = await this.api.get('/v1/nurse/alarms');
      this.alarm = Array.isArray(open) && open.length ? open[0] : null;
    } catch (_) {
      // shown as none until a frame says otherwise
    }
    this.render();
  }

  stop() {
    this.slot.replaceChildren();
    this.alarm = null;
    this.due = null;
    this.prompt.hidden = true;
  }

  holdStart(ev) {
    if (ev.button !== undefined && ev.button !== 0) return;
    this.btn.classList.add('holding');
    clearTimeout(this.holdTimer);
    this.holdTimer = setTimeout(() => {
      this.holdTimer = null;
      this.btn.classList.remove('holding');
      this.armedUntil = 0;
      // The release after a completed hold is no tap.
      this.held = true;
      this.raise();
    }, HOLD_MS);
  }

  holdEnd() {
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = null;
    this.btn.classList.remove('holding');
  }

  /** A tap arms the button; a second tap within three seconds raises. */
  tap() {
    if (this.held) {
      this.held = false;
      return;
    }
    if (this.sending) return;
    const now = Date.now();
    if (now < this.armedUntil) {
      this.armedUntil = 0;
      this.raise();
      return;
    }
    this.armedUntil = now + SECOND_TAP_MS;
    this.render();
    setTimeout(() => this.render(), SECOND_TAP_MS + 50);
  }

  async raise() {
    if (this.sending) return;
    this.sending = true;
    this.render();
    const body = {};
    const p = this.position();
    if (p) body.location = { lat: p.lat, lng: p.lng, accuracy_m: p.accuracy_m };
    try {
      this.alarm = await this.api.post('/v1/nurse/sos', body);
      if (navigator.vibrate) navigator.vibrate([400, 100, 400]);
    } catch (err) {
      this.stateEl.textContent = t('sos.failed');
      this.sending = false;
      this.btn.classList.add('armed');
      return;
    }
    this.sending = false;
    this.render();
  }

  async checkIn() {
    if (!this.due) return;
    const btn = document.getElementById('checkin-ok');
    btn.disabled = true;
    try {
      await this.api.post(`/v1/nurse/orders/${encodeURIComponent(this.due.order_id)}/check-in`, {});
      this.due = null;
      this.prompt.hidden = true;
    } catch (err) {
      document.getElementById('checkin-error').textContent = err && err.message ? err.message : String(err);
    } finally {
      btn.disabled = false;
    }
  }

  /** Socket frames of the safety checks; other frames are ignored. */
  onFrame(frame) {
    if (frame.type === 'alarm') {
      if (frame.state === 'resolved') {
        if (!this.alarm || this.alarm.id === frame.alarm_id) this.alarm = null;
      } else {
        this.alarm = { id: frame.alarm_id, kind: frame.kind, state: frame.state };
      }
      this.render();
    } else if (frame.type === 'check_in_due') {
      this.due = { order_id: frame.order_id, by: frame.by };
      document.getElementById('checkin-error').textContent = '';
      this.prompt.hidden = false;
      ring();
    }
  }

  render() {
    const armed = Date.now() < this.armedUntil;
    this.btn.classList.toggle('armed', armed);
    this.btn.classList.toggle('raised', !!this.alarm);
    if (this.sending) this.label.textContent = t('sos.sending');
    else if (armed) this.label.textContent = t('sos.again');
    else this.label.textContent = t('sos.button');
    this.btn.setAttribute('aria-label', t('sos.hint'));
    let text = '';
    if (this.alarm) text = this.alarm.state === 'acknowledged' ? t('sos.acknowledged') : t('sos.open');
    this.stateEl.textContent = text;
    this.stateEl.hidden = !text;
  }
}
