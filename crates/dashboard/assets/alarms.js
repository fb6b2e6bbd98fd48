// Nurses' alarms on the dashboard (issue 17): a loud banner on top of
// every view while any alarm is open, a siren (WebAudio, no audio file)
// repeating until every alarm is acknowledged, the nurse's position on the
// map, and the two coordinator steps: acknowledge ("I am on it"), then
// resolve with a note. Also the visits flagged for review (completed in
// under half the service's duration), each cleared with a note.

import { lang } from './i18n.js';

const WORDS = {
  zh: {
    sos: '紧急求助 SOS',
    missed_check_in: '未按时签到',
    silent_phone: '手机失联',
    open: '待响应',
    acknowledged: '处理中',
    ack: '我来处理',
    resolve: '处理完毕',
    note: '处理说明（必填）',
    note_required: '请填写处理说明',
    raised: '{ago}前',
    escalated: '已上报应急联络',
    escalation_failed: '应急上报失败',
    no_endpoint: '未配置应急联络',
    by: '处理人 {who}',
    nurse: '护士 {name}',
    position: '位置 {lat}, {lng}',
    no_position: '无定位',
    show: '在地图上查看',
    flags: '待复核的服务',
    flag_short_visit: '服务时长过短（{n} 分钟）',
    clear: '复核通过',
    clear_note: '复核说明（必填）',
    sound_on: '开启警报声',
  },
  en: {
    sos: 'SOS',
    missed_check_in: 'Missed check-in',
    silent_phone: 'Phone silent',
    open: 'Waiting',
    acknowledged: 'Being handled',
    ack: "I'm on it",
    resolve: 'Resolve',
    note: 'What was done (required)',
    note_required: 'Write what was done',
    raised: '{ago} ago',
    escalated: 'Escalated to the emergency contact',
    escalation_failed: 'Escalation failed',
    no_endpoint: 'No emergency contact configured',
    by: 'Handled by {who}',
    nurse: 'Nurse {name}',
    position: 'At {lat}, {lng}',
    no_position: 'No position',
    show: 'Show on map',
    flags: 'Visits to review',
    flag_short_visit: 'Visit too short ({n} min)',
    clear: 'Reviewed',
    clear_note: 'Review note (required)',
    sound_on: 'Turn on the alarm sound',
  },
};

function w(key, vars = {}) {
  const table = WORDS[lang()] || WORDS.zh;
  const s = table[key] ?? WORDS.zh[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}

function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function ago(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return lang() === 'zh' ? `${s} 秒` : `${s} s`;
  const m = Math.round(s / 60);
  return lang() === 'zh' ? `${m} 分钟` : `${m} min`;
}

/** A siren: two alternating tones, made with WebAudio. */
class Siren {
  constructor() {
    this.ctx = null;
    this.timer = null;
  }

  /** Browsers start audio only after a user gesture: call from one. */
  unlock() {
    try {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return;
      if (!this.ctx) this.ctx = new Ctx();
      if (this.ctx.state === 'suspended') this.ctx.resume();
    } catch (_) {
      this.ctx = null;
    }
  }

  get blocked() {
    return !this.ctx || this.ctx.state !== 'running';
  }

  play() {
    if (!this.ctx) return;
    try {
      const t0 = this.ctx.currentTime + 0.02;
      for (let i = 0; i < 4; i += 1) {
        const osc = this.ctx.createOscillator();
        const gain = this.ctx.createGain();
        osc.type = 'square';
        osc.frequency.value = i % 2 ? 660 : 990;
        const t = t0 + i * 0.3;
        gain.gain.setValueAtTime(0.0001, t);
        gain.gain.exponentialRampToValueAtTime(0.3, t + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.28);
        osc.connect(gain).connect(this.ctx.destination);
        osc.start(t);
        osc.stop(t + 0.3);
      }
    } catch (_) {
      // no sound: the banner remains
    }
  }

  /** Sounds every 2.5 s while `on`. */
  loop(on) {
    if (on && !this.timer) {
      this.play();
      this.timer = setInterval(() => this.play(), 2500);
    } else if (!on && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}

export class AlarmCenter {
  /**
   * @param {HTMLElement} box where the banner goes
   * @param {import('./api.js').Api} api
   * @param {{nurseName: (id: string) => string, onChange: () => void, onShow: (alarm: object) => void, toast: (text: string, kind?: string) => void}} hooks
   */
  constructor(box, api, hooks) {
    this.box = box;
    this.api = api;
    this.hooks = hooks;
    this.alarms = new Map();
    this.flags = [];
    this.notes = new Map();
    this.siren = new Siren();
    // Any gesture allows sound; no re-render here (it would swallow the click).
    const unlock = () => this.siren.unlock();
    document.addEventListener('pointerdown', unlock);
    document.addEventListener('keydown', unlock);
  }

  async refresh() {
    try {
      const [open, flags] = await Promise.all([
        this.api.get('/v1/dispatch/alarms'),
        this.api.get('/v1/dispatch/visit-flags'),
      ]);
      this.alarms = new Map((open || []).map((a) => [a.id, a]));
      this.flags = flags || [];
    } catch (e) {
      this.hooks.toast(e.message, 'error');
    }
    this.render();
    this.hooks.onChange();
  }

  stop() {
    this.alarms.clear();
    this.flags = [];
    this.siren.loop(false);
    this.box.replaceChildren();
  }

  /** A live `alarm` frame. */
  onFrame(frame) {
    const { type, ...alarm } = frame;
    if (alarm.state === 'resolved') this.alarms.delete(alarm.id);
    else this.alarms.set(alarm.id, alarm);
    this.render();
    this.hooks.onChange();
  }

  /** Map markers: every unresolved alarm with a position. */
  markers() {
    return [...this.alarms.values()]
      .filter((a) => a.location)
      .map((a) => ({ id: a.id, lat: a.location.lat, lng: a.location.lng, kind: a.kind, state: a.state, label: w(a.kind) }));
  }

  async act(alarm, step) {
    try {
      let res;
      if (step === 'ack') {
        res = await this.api.post(`/v1/dispatch/alarms/${encodeURIComponent(alarm.id)}/ack`, {});
      } else {
        const note = (this.notes.get(alarm.id) || '').trim();
        if (!note) {
          this.hooks.toast(w('note_required'), 'error');
          return;
        }
        res = await this.api.post(`/v1/dispatch/alarms/${encodeURIComponent(alarm.id)}/resolve`, { note });
        this.notes.delete(alarm.id);
      }
      this.onFrame({ type: 'alarm', ...res });
    } catch (e) {
      this.hooks.toast(e.message, 'error');
    }
  }

  async clearFlag(flag, note) {
    if (!note.trim()) {
      this.hooks.toast(w('note_required'), 'error');
      return;
    }
    try {
      await this.api.post(`/v1/dispatch/orders/${encodeURIComponent(flag.order_id)}/clear-flag`, { note: note.trim() });
      this.flags = this.flags.filter((f) => f.order_id !== flag.order_id);
      this.render();
    } catch (e) {
      this.hooks.toast(e.message, 'error');
    }
  }

  card(a) {
    const pos = a.location
      ? w('position', { lat: a.location.lat.toFixed(5), lng: a.location.lng.toFixed(5) })
      : w('no_position');
    const escalation = a.escalation === 'delivered' ? w('escalated')
      : a.escalation === 'failed' ? w('escalation_failed')
        : a.escalation === 'no_endpoint' ? w('no_endpoint') : null;
    const actions = [];
    if (a.state === 'open') {
      actions.push(h('button', { type: 'button', class: 'alarm-ack', on: { click: () => this.act(a, 'ack') } }, w('ack')));
    } else {
      const input = h('input', {
        type: 'text', class: 'alarm-note', maxlength: '500', placeholder: w('note'), 'aria-label': w('note'),
        on: { input: (ev) => this.notes.set(a.id, ev.target.value) },
      });
      input.value = this.notes.get(a.id) || '';
      actions.push(input, h('button', { type: 'button', class: 'alarm-resolve', on: { click: () => this.act(a, 'resolve') } }, w('resolve')));
    }
    if (a.location) {
      actions.push(h('button', { type: 'button', class: 'ghost alarm-show', on: { click: () => this.hooks.onShow(a) } }, w('show')));
    }
    return h('div', { class: `alarm alarm-${a.state}`, role: 'alert', 'data-alarm-id': a.id },
      h('div', { class: 'alarm-head' },
        h('strong', { class: 'alarm-kind' }, `⚠ ${w(a.kind)}`),
        h('span', { class: 'alarm-state' }, w(a.state)),
        h('span', { class: 'alarm-ago' }, w('raised', { ago: ago(a.raised_at) }))),
      h('div', { class: 'alarm-facts' },
        h('span', {}, w('nurse', { name: this.hooks.nurseName(a.nurse_id) })),
        h('span', {}, pos),
        a.note ? h('span', { class: 'alarm-nurse-note' }, `“${a.note}”`) : null,
        a.acknowledged_by ? h('span', {}, w('by', { who: a.acknowledged_by })) : null,
        escalation ? h('span', { class: 'alarm-escalation' }, escalation) : null),
      h('div', { class: 'alarm-actions' }, actions));
  }

  flagRow(f) {
    const input = h('input', { type: 'text', maxlength: '500', placeholder: w('clear_note'), 'aria-label': w('clear_note') });
    return h('li', { class: 'flag', 'data-order-id': f.order_id },
      h('span', {}, `${w('flag_short_visit', { n: f.visit_minutes ?? '?' })} · ${f.order_id.slice(0, 8)} · ${this.hooks.nurseName(f.nurse_id)}`),
      input,
      h('button', { type: 'button', on: { click: () => this.clearFlag(f, input.value) } }, w('clear')));
  }

  render() {
    const list = [...this.alarms.values()].sort((a, b) => Date.parse(b.raised_at) - Date.parse(a.raised_at));
    const unacknowledged = list.some((a) => a.state === 'open');
    this.siren.loop(unacknowledged);
    const children = [];
    if (list.length) {
      children.push(h('div', { class: `alarm-banner${unacknowledged ? ' alarm-loud' : ''}` },
        unacknowledged && this.siren.blocked
          ? h('button', {
            type: 'button',
            class: 'alarm-sound',
            on: { click: (ev) => { this.siren.unlock(); this.siren.play(); ev.currentTarget.remove(); } },
          }, w('sound_on'))
          : null,
        list.map((a) => this.card(a))));
    }
    if (this.flags.length) {
      children.push(h('details', { class: 'flags-box' },
        h('summary', {}, `${w('flags')} (${this.flags.length})`),
        h('ul', { class: 'flag-list' }, this.flags.map((f) => this.flagRow(f)))));
    }
    // Keep a note being typed: only rebuild when nothing in the box has focus.
    if (this.box.contains(document.activeElement) && document.activeElement.tagName === 'INPUT') return;
    this.box.replaceChildren(...children);
  }
}
