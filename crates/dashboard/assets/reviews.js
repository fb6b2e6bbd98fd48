// The screening queue: orders waiting for a coordinator (`awaiting_review`),
// oldest first, with how long each has waited, the intake's risk flags and
// answers; approve (dispatch starts, the 30-minute promise counts from now)
// or reject with a reason the resident reads. Self-contained: its words
// are here, the DOM is built from text nodes only.

import { lang } from './i18n.js';

const WORDS = {
  zh: {
    tab: '审核',
    title: '待审核订单',
    empty: '没有等待审核的订单。',
    waiting: '已等待 {min} 分钟',
    placed: '下单 {at}',
    flags: '风险提示',
    answers: '问诊回答',
    doctor_order: '医嘱编号',
    address: '地址',
    contact: '联系人',
    approve: '批准并派单',
    reject: '拒绝',
    reason: '拒绝原因（居民可见）',
    reason_required: '请填写拒绝原因',
    approved: '已批准：开始派单，30 分钟上门承诺从现在起算',
    rejected: '已拒绝，居民将看到原因',
    failed: '操作失败：{message}',
    yes: '是',
    no: '否',
    'q.bedridden': '长期卧床',
    'q.infectious_disease': '传染病',
    'q.anticoagulants': '服用抗凝药',
    'q.unsafe_home': '宠物或不安全环境',
    'q.allergies': '过敏史',
  },
  en: {
    tab: 'Review',
    title: 'Orders awaiting review',
    empty: 'No order is waiting for review.',
    waiting: 'waiting {min} min',
    placed: 'placed {at}',
    flags: 'Risk flags',
    answers: 'Intake answers',
    doctor_order: "Doctor's order",
    address: 'Address',
    contact: 'Contact',
    approve: 'Approve and dispatch',
    reject: 'Reject',
    reason: 'Reason for rejecting (the resident sees it)',
    reason_required: 'Give a reason for rejecting',
    approved: 'Approved: dispatch starts, the 30-minute promise counts from now',
    rejected: 'Rejected; the resident sees the reason',
    failed: 'Failed: {message}',
    yes: 'yes',
    no: 'no',
    'q.bedridden': 'bedridden',
    'q.infectious_disease': 'infectious disease',
    'q.anticoagulants': 'on anticoagulants',
    'q.unsafe_home': 'pets or unsafe home',
    'q.allergies': 'allergies',
  },
};

export function w(key, vars = {}) {
  const dict = WORDS[lang()] || WORDS.zh;
  const text = dict[key] ?? WORDS.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

/** Whole minutes an order has waited at `now` (ms), never negative. */
export function waitingMinutes(createdAt, now) {
  return Math.max(0, Math.floor((now - Date.parse(createdAt)) / 60000));
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else if (k === 'data') for (const [dk, dv] of Object.entries(v)) node.dataset[dk] = dv;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export class ReviewQueue {
  /**
   * @param {HTMLElement} root where the queue is drawn
   * @param {import('./api.js').Api} api the coordinator API
   * @param {{serviceName: (code: string) => string, toast: (msg: string, kind?: string) => void,
   *          onCount: (n: number) => void}} hooks
   */
  constructor(root, api, hooks) {
    this.root = root;
    this.api = api;
    this.hooks = hooks;
    this.items = [];
    this.reasons = new Map();
    this.busy = new Set();
  }

  async refresh() {
    try {
      this.items = await this.api.get('/v1/dispatch/reviews');
    } catch (e) {
      this.hooks.toast(w('failed', { message: e.message }), 'error');
      return;
    }
    this.render();
  }

  /** A live `order` frame: refresh when an order enters or leaves screening. */
  onOrder(order) {
    const listed = this.items.some((i) => i.order.id === order.id);
    if (listed || order.status === 'awaiting_review') this.refresh();
  }

  /** Each second: the waiting times in place. */
  tick(now = Date.now()) {
    for (const span of this.root.querySelectorAll('.review-waiting[data-created]')) {
      span.textContent = w('waiting', { min: waitingMinutes(span.dataset.created, now) });
    }
  }

  render() {
    this.hooks.onCount(this.items.length);
    const now = Date.now();
    const cards = this.items.map((item) => this.card(item.order, now));
    this.root.replaceChildren(
      el('h2', {}, w('title')),
      cards.length ? el('ul', { class: 'review-list' }, cards) : el('p', { class: 'muted review-empty' }, w('empty')),
    );
  }

  card(o, now) {
    const c = o.clinical || { answers: {}, flags: [] };
    const answers = Object.entries(c.answers || {})
      .filter(([, v]) => v !== false && v !== null && v !== '')
      .map(([k, v]) => el('li', {}, `${w(`q.${k}`)}: ${v === true ? w('yes') : v}`));
    const reason = el('textarea', {
      class: 'review-reason',
      rows: '2',
      maxlength: '500',
      placeholder: w('reason'),
      'aria-label': w('reason'),
      on: { input: (e) => this.reasons.set(o.id, e.target.value) },
    });
    reason.value = this.reasons.get(o.id) || '';
    const busy = this.busy.has(o.id);
    return el('li', { class: 'card review-card', data: { orderId: o.id } },
      el('div', { class: 'review-head' },
        el('strong', {}, this.hooks.serviceName(o.service_code)),
        el('span', { class: 'review-waiting badge', data: { created: o.created_at } },
          w('waiting', { min: waitingMinutes(o.created_at, now) })),
      ),
      (c.flags || []).length
        ? el('p', { class: 'review-flags' }, `${w('flags')}: `,
          (c.flags || []).map((f) => el('span', { class: 'chip flag' }, w(`q.${f}`))))
        : null,
      answers.length ? el('ul', { class: 'review-answers', 'aria-label': w('answers') }, answers) : null,
      c.doctor_order_ref ? el('p', {}, `${w('doctor_order')}: ${c.doctor_order_ref}`) : null,
      el('p', { class: 'muted' }, `${w('address')}: ${o.address.text} ${o.address.detail || ''}`),
      el('p', { class: 'muted' }, `${w('contact')}: ${o.contact.name} ${o.contact.phone}`),
      el('div', { class: 'review-actions' },
        el('button', { type: 'button', class: 'primary review-approve', disabled: busy, on: { click: () => this.approve(o.id) } }, w('approve')),
        reason,
        el('button', { type: 'button', class: 'danger review-reject', disabled: busy, on: { click: () => this.reject(o.id) } }, w('reject')),
      ),
    );
  }

  async decide(id, path, body, done) {
    this.busy.add(id);
    this.render();
    try {
      await this.api.post(path, body);
      this.reasons.delete(id);
      this.hooks.toast(w(done), 'ok');
    } catch (e) {
      this.hooks.toast(w('failed', { message: e.message }), 'error');
    } finally {
      this.busy.delete(id);
      await this.refresh();
    }
  }

  approve(id) {
    return this.decide(id, `/v1/dispatch/orders/${id}/approve`, {}, 'approved');
  }

  reject(id) {
    const reason = (this.reasons.get(id) || '').trim();
    if (!reason) {
      this.hooks.toast(w('reason_required'), 'error');
      return Promise.resolve();
    }
    return this.decide(id, `/v1/dispatch/orders/${id}/reject`, { reason }, 'rejected');
  }
}
