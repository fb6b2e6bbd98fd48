// Clinical governance screens: a nurse's credentials (edit, verify,
// reject), certificates expiring within 30 days, and the audit trail.
// Talks to `/v1/dispatch/nurses/{id}/credentials[/verify|/reject]`,
// `/v1/dispatch/credentials/expiring` and `/v1/dispatch/audit`.
// Labels are kept here (Chinese first, English on the switch).

import { lang } from './i18n.js';

const L = {
  zh: {
    'gov.credentials': '护士资质',
    'gov.pick': '选择护士',
    'gov.none_entered': '尚未录入资质：录入并审核通过前，该护士不会收到派单。',
    'gov.licence': '执业证书编号',
    'gov.registered': '首次注册日期',
    'gov.years': '执业 {n} 年',
    'gov.title': '职称',
    'gov.certs': '专科证书',
    'gov.cert': '证书',
    'gov.number': '编号',
    'gov.issued': '发证日期',
    'gov.expires': '有效期至',
    'gov.no_expiry': '长期有效',
    'gov.add_cert': '添加证书',
    'gov.remove': '移除',
    'gov.save': '保存（需重新审核）',
    'gov.verify': '审核通过',
    'gov.reject': '驳回',
    'gov.reason': '驳回原因',
    'gov.saved': '资质已保存，待审核',
    'gov.verified_ok': '资质已审核通过',
    'gov.rejected_ok': '资质已驳回',
    'gov.state.pending': '待审核',
    'gov.state.verified': '已审核',
    'gov.state.rejected': '已驳回',
    'gov.state.none': '未录入',
    'gov.reviewed': '{who} 于 {at} 审核',
    'gov.expiring': '30 天内到期的证书',
    'gov.expiring_none': '30 天内没有到期的证书',
    'gov.days_left': '剩 {n} 天',
    'gov.expired_ago': '已过期 {n} 天',
    'gov.nurse': '护士',
    'gov.audit': '审计日志（全程留痕）',
    'gov.subject': '订单或护士编号',
    'gov.search': '查询',
    'gov.more': '更多',
    'gov.audit_none': '没有记录',
    'gov.col.at': '时间',
    'gov.col.who': '操作人',
    'gov.col.action': '操作',
    'gov.col.subject': '对象',
    'gov.col.from': '来源',
    'gov.col.detail': '说明',
    'act.read_address': '查看地址与电话',
    'act.order_assigned': '人工派单',
    'act.credentials_changed': '修改资质',
    'act.credentials_verified': '审核资质',
    'act.credentials_rejected': '驳回资质',
    'role.nurse': '护士',
    'role.coordinator': '调度员',
    'error': '出错：{message}',
  },
  en: {
    'gov.credentials': 'Nurse credentials',
    'gov.pick': 'Choose a nurse',
    'gov.none_entered': 'No credentials yet: she gets no offers until they are entered and verified.',
    'gov.licence': 'Licence number',
    'gov.registered': 'First registered on',
    'gov.years': '{n} years of practice',
    'gov.title': 'Title',
    'gov.certs': 'Certificates',
    'gov.cert': 'Certificate',
    'gov.number': 'Number',
    'gov.issued': 'Issued on',
    'gov.expires': 'Expires on',
    'gov.no_expiry': 'no expiry',
    'gov.add_cert': 'Add certificate',
    'gov.remove': 'Remove',
    'gov.save': 'Save (needs verifying again)',
    'gov.verify': 'Verify',
    'gov.reject': 'Reject',
    'gov.reason': 'Reason for rejecting',
    'gov.saved': 'Credentials saved, pending verification',
    'gov.verified_ok': 'Credentials verified',
    'gov.rejected_ok': 'Credentials rejected',
    'gov.state.pending': 'Pending',
    'gov.state.verified': 'Verified',
    'gov.state.rejected': 'Rejected',
    'gov.state.none': 'Not entered',
    'gov.reviewed': 'reviewed by {who} at {at}',
    'gov.expiring': 'Certificates expiring within 30 days',
    'gov.expiring_none': 'No certificate expires within 30 days',
    'gov.days_left': '{n} days left',
    'gov.expired_ago': 'expired {n} days ago',
    'gov.nurse': 'Nurse',
    'gov.audit': 'Audit trail',
    'gov.subject': 'Order or nurse id',
    'gov.search': 'Search',
    'gov.more': 'More',
    'gov.audit_none': 'No rows',
    'gov.col.at': 'Time',
    'gov.col.who': 'Who',
    'gov.col.action': 'Action',
    'gov.col.subject': 'Subject',
    'gov.col.from': 'From',
    'gov.col.detail': 'Detail',
    'act.read_address': 'Read address and phone',
    'act.order_assigned': 'Manual assignment',
    'act.credentials_changed': 'Credentials changed',
    'act.credentials_verified': 'Credentials verified',
    'act.credentials_rejected': 'Credentials rejected',
    'role.nurse': 'nurse',
    'role.coordinator': 'coordinator',
    'error': 'Error: {message}',
  },
};

const TITLES = [
  ['nurse', '护士', 'Nurse'],
  ['senior_nurse', '护师', 'Senior nurse'],
  ['supervisor_nurse', '主管护师', 'Supervisor nurse'],
  ['associate_chief_nurse', '副主任护师', 'Associate chief nurse'],
  ['chief_nurse', '主任护师', 'Chief nurse'],
];

const CERTS = [
  ['picc', 'PICC 维护', 'PICC care'],
  ['wound_stoma', '伤口造口', 'Wound and stoma'],
  ['maternal_infant', '母婴护理', 'Maternal and infant'],
  ['rehab', '康复护理', 'Rehabilitation'],
  ['oral_care', '口腔护理', 'Oral care'],
];

function tr(key, vars = {}) {
  const text = (L[lang()] || L.zh)[key] ?? L.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => (k in vars ? String(vars[k]) : `{${k}}`));
}

function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'data') for (const [dk, dv] of Object.entries(v)) node.dataset[dk] = dv;
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else if (k in node && typeof v !== 'string') node[k] = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const label = (list, code) => {
  const found = list.find((x) => x[0] === code);
  if (!found) return code;
  return lang() === 'zh' ? found[1] : found[2];
};

function when(iso) {
  if (!iso) return '';
  return new Date(iso).toLocaleString(lang() === 'zh' ? 'zh-CN' : 'en-GB', { hour12: false });
}

const errorText = (e) => (e.field ? `${e.field}: ${e.message}` : e.message);

/**
 * The governance view.
 * @param {object} deps `api` (get/post/put), `nurses()` (the roster), `toast(text, kind)`,
 *   `root` (the view's element), `onChange()` (the roster changed)
 */
export class Governance {
  constructor(deps) {
    Object.assign(this, deps);
    this.nurseId = null;
    this.credentials = null;
    this.draft = null;
    this.audit = { rows: [], next: null, subject: '' };
    this.expiring = [];
  }

  /** Shows the view, optionally opening a nurse's credentials. */
  async show(nurseId) {
    if (nurseId) this.nurseId = nurseId;
    if (!this.nurseId) {
      const first = this.nurses().find((n) => n.active);
      this.nurseId = first ? first.id : null;
    }
    await Promise.all([this.loadCredentials(), this.loadExpiring(), this.loadAudit(true)]);
    this.render();
  }

  async loadCredentials() {
    this.credentials = null;
    this.draft = null;
    if (!this.nurseId) return;
    // The roster says whether any are entered: no request bound to 404.
    const known = this.nurses().find((n) => n.id === this.nurseId);
    try {
      if (known && !known.verification) throw Object.assign(new Error('none'), { status: 404 });
      this.credentials = await this.api.get(`/v1/dispatch/nurses/${encodeURIComponent(this.nurseId)}/credentials`);
    } catch (e) {
      if (e.status !== 404) this.toast(tr('error', { message: errorText(e) }), 'error');
    }
    const c = this.credentials;
    this.draft = {
      licence_no: c ? c.licence_no : '',
      first_registered_on: c ? c.first_registered_on : '',
      title: c ? c.title : 'senior_nurse',
      certificates: c ? c.certificates.map((x) => ({ code: x.code, number: x.number, issued_on: x.issued_on, expires_on: x.expires_on || '' })) : [],
    };
  }

  async loadExpiring() {
    try {
      this.expiring = await this.api.get('/v1/dispatch/credentials/expiring?days=30');
    } catch (e) {
      this.expiring = [];
      this.toast(tr('error', { message: errorText(e) }), 'error');
    }
  }

  async loadAudit(fresh) {
    const q = new URLSearchParams({ limit: '50' });
    if (this.audit.subject) q.set('subject', this.audit.subject);
    if (!fresh && this.audit.next) q.set('before', String(this.audit.next));
    try {
      const page = await this.api.get(`/v1/dispatch/audit?${q}`);
      this.audit.rows = fresh ? page.items : this.audit.rows.concat(page.items);
      this.audit.next = page.next_before ?? null;
    } catch (e) {
      this.toast(tr('error', { message: errorText(e) }), 'error');
    }
  }

  render() {
    this.root.replaceChildren(
      this.renderCredentials(),
      this.renderExpiring(),
      this.renderAudit(),
    );
  }

  stateBadge(state) {
    const s = state || 'none';
    return h('span', { class: `badge cred-${s}`, data: { verification: s } }, tr(`gov.state.${s}`));
  }

  renderCredentials() {
    const nurses = this.nurses().slice().sort((a, b) => a.name.localeCompare(b.name));
    const picker = h('select', {
      id: 'cred-nurse',
      'aria-label': tr('gov.pick'),
      on: { change: async (e) => { this.nurseId = e.target.value; await this.loadCredentials(); this.render(); } },
    }, nurses.map((n) => h('option', { value: n.id, selected: n.id === this.nurseId }, `${n.name} · ${tr(`gov.state.${n.verification || 'none'}`)}`)));
    const card = h('section', { class: 'card gov-card', id: 'credentials' },
      h('h2', {}, tr('gov.credentials')),
      h('label', { class: 'gov-field' }, h('span', {}, tr('gov.pick')), picker));
    if (!this.nurseId || !this.draft) return card;
    const c = this.credentials;
    const d = this.draft;
    card.append(h('p', { class: 'cred-state' },
      this.stateBadge(c && c.verification),
      c ? ` ${tr('gov.years', { n: c.practice_years })}` : ` ${tr('gov.none_entered')}`,
      c && c.reviewed_by ? h('span', { class: 'muted' }, ` · ${tr('gov.reviewed', { who: c.reviewed_by, at: when(c.reviewed_at) })}`) : null,
      c && c.reject_reason ? h('span', { class: 'error' }, ` · ${c.reject_reason}`) : null));
    const form = h('form', { class: 'cred-form', on: { submit: (e) => { e.preventDefault(); this.save(); } } },
      h('label', { class: 'gov-field' }, h('span', {}, tr('gov.licence')),
        h('input', { name: 'licence_no', value: d.licence_no, maxlength: '40', autocomplete: 'off', on: { input: (e) => { d.licence_no = e.target.value; } } })),
      h('label', { class: 'gov-field' }, h('span', {}, tr('gov.registered')),
        h('input', { name: 'first_registered_on', type: 'date', value: d.first_registered_on, on: { input: (e) => { d.first_registered_on = e.target.value; } } })),
      h('label', { class: 'gov-field' }, h('span', {}, tr('gov.title')),
        h('select', { name: 'title', on: { change: (e) => { d.title = e.target.value; } } },
          TITLES.map(([code]) => h('option', { value: code, selected: code === d.title }, label(TITLES, code))))),
      h('fieldset', { class: 'certs' }, h('legend', {}, tr('gov.certs')),
        d.certificates.map((x, i) => this.certRow(x, i, c)),
        h('button', { type: 'button', class: 'add-cert', on: { click: () => { d.certificates.push({ code: 'picc', number: '', issued_on: '', expires_on: '' }); this.render(); } } }, tr('gov.add_cert'))),
      h('div', { class: 'gov-actions' },
        h('button', { type: 'submit', class: 'primary save-cred' }, tr('gov.save')),
        c && c.verification !== 'verified' ? h('button', { type: 'button', class: 'verify-cred', on: { click: () => this.review('verify') } }, tr('gov.verify')) : null),
      c ? h('div', { class: 'gov-reject' },
        h('input', { name: 'reason', maxlength: '500', placeholder: tr('gov.reason'), 'aria-label': tr('gov.reason') }),
        h('button', { type: 'button', class: 'danger reject-cred', on: { click: (e) => this.review('reject', e.target.form.reason.value) } }, tr('gov.reject'))) : null,
      h('p', { class: 'error', id: 'cred-error', role: 'alert' }));
    card.append(form);
    return card;
  }

  certRow(x, i, c) {
    const shown = c && c.certificates.find((y) => y.code === x.code);
    const invalid = shown && !shown.valid_today;
    return h('div', { class: `cert-row${invalid ? ' cert-invalid' : ''}`, data: { cert: x.code } },
      h('select', { 'aria-label': tr('gov.cert'), on: { change: (e) => { x.code = e.target.value; } } },
        CERTS.map(([code]) => h('option', { value: code, selected: code === x.code }, label(CERTS, code)))),
      h('input', { 'aria-label': tr('gov.number'), placeholder: tr('gov.number'), value: x.number, maxlength: '40', on: { input: (e) => { x.number = e.target.value; } } }),
      h('label', {}, h('span', {}, tr('gov.issued')), h('input', { type: 'date', value: x.issued_on, on: { input: (e) => { x.issued_on = e.target.value; } } })),
      h('label', {}, h('span', {}, tr('gov.expires')), h('input', { type: 'date', value: x.expires_on, on: { input: (e) => { x.expires_on = e.target.value; } } })),
      h('button', { type: 'button', class: 'small', on: { click: () => { this.draft.certificates.splice(i, 1); this.render(); } } }, tr('gov.remove')));
  }

  async save() {
    const d = this.draft;
    const body = {
      licence_no: d.licence_no,
      first_registered_on: d.first_registered_on || null,
      title: d.title,
      certificates: d.certificates.map((x) => ({ code: x.code, number: x.number, issued_on: x.issued_on || null, expires_on: x.expires_on || null })),
    };
    try {
      this.credentials = await this.api.put(`/v1/dispatch/nurses/${encodeURIComponent(this.nurseId)}/credentials`, body);
      this.toast(tr('gov.saved'), 'ok');
      await this.after();
    } catch (e) {
      const box = this.root.querySelector('#cred-error');
      if (box) box.textContent = errorText(e);
    }
  }

  async review(what, reason) {
    const path = `/v1/dispatch/nurses/${encodeURIComponent(this.nurseId)}/credentials/${what}`;
    try {
      await this.api.post(path, what === 'reject' ? { reason: reason || '' } : {});
      this.toast(tr(what === 'verify' ? 'gov.verified_ok' : 'gov.rejected_ok'), 'ok');
      await this.after();
    } catch (e) {
      const box = this.root.querySelector('#cred-error');
      if (box) box.textContent = errorText(e);
    }
  }

  async after() {
    await this.onChange();
    await Promise.all([this.loadCredentials(), this.loadExpiring(), this.loadAudit(true)]);
    this.render();
  }

  renderExpiring() {
    const rows = this.expiring;
    return h('section', { class: 'card gov-card', id: 'expiring' },
      h('h2', {}, tr('gov.expiring')),
      rows.length === 0
        ? h('p', { class: 'muted' }, tr('gov.expiring_none'))
        : h('ul', { class: 'expiring-list' }, rows.map((r) => h('li', {
          class: r.days_left < 0 ? 'expired' : 'soon',
          data: { nurseId: r.nurse_id, cert: r.code },
        },
        h('button', { type: 'button', class: 'linkish', on: { click: () => this.show(r.nurse_id) } }, r.nurse_name),
        ` · ${lang() === 'zh' ? r.name_zh : r.name_en} ${r.number} · ${r.expires_on} · `,
        h('strong', {}, r.days_left < 0 ? tr('gov.expired_ago', { n: -r.days_left }) : tr('gov.days_left', { n: r.days_left }))))));
  }

  renderAudit() {
    const a = this.audit;
    const search = h('form', { class: 'audit-search', on: { submit: async (e) => { e.preventDefault(); a.subject = e.target.subject.value.trim(); await this.loadAudit(true); this.render(); } } },
      h('input', { name: 'subject', value: a.subject, placeholder: tr('gov.subject'), 'aria-label': tr('gov.subject'), maxlength: '64' }),
      h('button', { type: 'submit' }, tr('gov.search')));
    const list = a.rows.length === 0
      ? h('p', { class: 'muted' }, tr('gov.audit_none'))
      : h('ul', { class: 'audit-list' }, a.rows.map((r) => h('li', { data: { action: r.action, subject: r.subject_id } },
        h('div', { class: 'audit-head' },
          h('strong', {}, tr(`act.${r.action}`)),
          h('span', { class: 'muted' }, ` ${when(r.at)}`)),
        h('div', {}, `${tr(`role.${r.actor_role}`)} ${r.actor_sub} → ${r.subject_kind} ${r.subject_id.slice(0, 8)}`),
        h('div', { class: 'muted' }, [r.client_addr, r.detail].filter(Boolean).join(' · ')))));
    return h('section', { class: 'card gov-card', id: 'audit' },
      h('h2', {}, tr('gov.audit')),
      search,
      list,
      a.next ? h('button', { type: 'button', class: 'more', on: { click: async () => { await this.loadAudit(false); this.render(); } } }, tr('gov.more')) : null);
  }
}
