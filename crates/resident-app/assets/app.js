// The resident app: sign in by SMS code, the household (family members and
// addresses), the catalogue, a quote before ordering, ordering, following
// the nurse live, cancelling, rating, and the order history.
// Screens are drawn into <main> from the location hash (#/home, #/book/CODE,
// #/order/ID, #/orders, #/household, #/signin).

import { ApiError, Client, newKey } from './api.js';
import { getLang, pick, setLang, t } from './i18n.js';
import { MiniMap } from './minimap.js';
import { CANCELLABLE, FINAL, dayAndTime, hhmm, minutesUntil, money } from './words.js';

const TOKEN_KEY = 'yixin.app.token';
const PHONE_KEY = 'yixin.app.phone';
const view = document.getElementById('view');

const state = {
  config: { org: 'demo', dev_login: false, areas: [] },
  token: null,
  catalog: null,
  live: null,
  timer: null,
};

function store(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch (_) { /* private mode: kept in memory only */ }
}
function load(key) {
  try { return localStorage.getItem(key); } catch (_) { return null; }
}

const api = new Client(() => state.token, () => {
  signOut();
  toast(t('signin.expired'));
});

// ---------------------------------------------------------------- helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return el;
}

function svgEl(cls) {
  const s = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  s.setAttribute('class', cls);
  return s;
}

function show(title, ...nodes) {
  document.getElementById('title').textContent = title;
  view.replaceChildren(...nodes.flat().filter(Boolean));
  view.focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

let toastTimer = null;
function toast(text) {
  const el = document.getElementById('toast');
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
}

function message(err) {
  if (err instanceof ApiError) {
    if (err.code === 'network') return t('error.network');
    if (err.status === 429) return t('error.rate_limited', { n: err.retryAfter || 60 });
    if (err.code === 'invalid_code') return t('error.invalid_code');
    return err.message;
  }
  return t('error.generic', { message: String(err && err.message ? err.message : err) });
}

/** Shows an API error under the input named by its `field` (else in `fallback`). */
function showError(form, err, fallback) {
  for (const old of form.querySelectorAll('.field-error')) old.remove();
  const text = message(err);
  const field = err instanceof ApiError ? err.field : null;
  const target = field && (form.querySelector(`[data-field="${CSS.escape(field)}"]`)
    || form.querySelector(`[data-field="${CSS.escape(field.split('.')[0])}"]`));
  if (target) {
    const p = h('p', { class: 'field-error', role: 'alert', 'data-error-for': field, text });
    target.after(p);
    p.scrollIntoView({ block: 'center' });
  } else {
    fallback.textContent = text;
  }
}

function stopLive() {
  if (state.live) {
    state.live.onclose = null;
    state.live.close();
    state.live = null;
  }
  clearInterval(state.timer);
  state.timer = null;
}

async function catalog() {
  if (!state.catalog) state.catalog = await api.get('/v1/catalog');
  return state.catalog;
}

function services(cat) {
  return cat.categories.flatMap((c) => c.services);
}

function skillNames(cat, codes) {
  return codes.map((code) => pick(cat.skills.find((s) => s.code === code)) || code).join('、');
}

// ---------------------------------------------------------------- sign-in

function signOut() {
  stopLive();
  state.token = null;
  state.catalog = null;
  store(TOKEN_KEY, null);
  location.hash = '#/signin';
}

function signedIn(token, phone) {
  state.token = token;
  store(TOKEN_KEY, token);
  if (phone) store(PHONE_KEY, phone);
  location.hash = '#/home';
}

function signinScreen() {
  const phone = h('input', { type: 'tel', id: 'phone', inputmode: 'numeric', autocomplete: 'tel', maxlength: 20, 'data-field': 'phone', value: load(PHONE_KEY) || '' });
  const code = h('input', { type: 'text', id: 'code', class: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 6, 'data-field': 'code' });
  const error = h('p', { class: 'error', role: 'alert', id: 'signin-error' });
  const note = h('p', { class: 'muted', id: 'signin-note' });
  const send = h('button', { type: 'button', class: 'secondary', id: 'send-code', text: t('signin.send') });
  const form = h('form', { id: 'signin-form', novalidate: true },
    h('label', { for: 'phone', text: t('signin.phone') }), phone, send, note,
    h('label', { for: 'code', text: t('signin.code') }), code,
    h('button', { type: 'submit', class: 'primary', id: 'verify', text: t('signin.submit') }), error);
  let countdown = null;
  const wait = (n) => {
    clearInterval(countdown);
    let left = n;
    send.disabled = true;
    send.textContent = t('signin.resend', { n: left });
    countdown = setInterval(() => {
      left -= 1;
      if (left <= 0 || !send.isConnected) {
        clearInterval(countdown);
        send.disabled = false;
        send.textContent = t('signin.send');
      } else {
        send.textContent = t('signin.resend', { n: left });
      }
    }, 1000);
  };
  send.addEventListener('click', async () => {
    error.textContent = '';
    try {
      const r = await api.post('/v1/auth/otp', { phone: phone.value, role: 'resident', org: state.config.org });
      note.textContent = t('signin.sent', { n: Math.round(r.expires_in / 60) });
      wait(60);
      code.focus();
    } catch (e) {
      if (e.status === 429 && e.retryAfter) wait(e.retryAfter);
      showError(form, e, error);
    }
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    try {
      const r = await api.post('/v1/auth/otp/verify', { phone: phone.value, code: code.value.trim(), role: 'resident', org: state.config.org });
      signedIn(r.token, phone.value.replace(/[^0-9]/g, '').slice(-11));
    } catch (e) {
      showError(form, e, error);
    }
  });
  const demo = state.config.dev_login
    ? h('button', { type: 'button', class: 'secondary', id: 'demo-signin', text: t('signin.demo'), onclick: async () => {
      try {
        const r = await api.post('/v1/auth/dev-token', { role: 'resident', sub: 'demo-resident', org: state.config.org });
        signedIn(r.token, null);
      } catch (e) { error.textContent = message(e); }
    } })
    : null;
  show(t('signin.title'), h('h2', { text: t('signin.title') }), h('p', { text: t('signin.hint') }), form, demo);
}

// ---------------------------------------------------------------- home

async function homeScreen() {
  const cat = await catalog();
  const cards = cat.categories.map((c) => h('section', { class: 'category' },
    h('h2', { text: pick(c) }),
    c.services.map((s) => h('a', { class: 'card service', href: `#/book/${encodeURIComponent(s.code)}`, 'data-service': s.code },
      h('div', { class: 'row' }, h('h3', { text: pick(s) }), h('span', { class: 'price', text: money(s.price_cents) })),
      h('p', { class: 'muted', text: t('home.minutes', { n: s.duration_min }) }),
      s.required_skills.length ? h('p', { text: t('home.includes', { what: skillNames(cat, s.required_skills) }) }) : null))));
  show(t('home.title'), cards, h('button', { type: 'button', class: 'danger', id: 'signout', text: t('signout'), onclick: signOut }));
}

// ---------------------------------------------------------------- booking

function choiceList(name, items, selected, field) {
  return h('div', { class: 'choices', role: 'radiogroup', 'data-field': field },
    items.map(([value, label]) => {
      const input = h('input', { type: 'radio', name, value, checked: value === selected });
      const lab = h('label', { class: `choice${value === selected ? ' checked' : ''}` }, input, h('span', { text: label }));
      input.addEventListener('change', () => {
        for (const l of lab.parentNode.querySelectorAll('.choice')) l.classList.toggle('checked', l.contains(document.activeElement) || l.querySelector('input').checked);
      });
      return lab;
    }));
}

function chosen(form, name) {
  const el = form.querySelector(`input[name="${name}"]:checked`);
  return el ? el.value : null;
}

function questionInput(q) {
  const name = `q_${q.code}`;
  const label = pick(q, 'text');
  if (q.type === 'bool') {
    return h('div', { class: 'question' }, h('span', { class: 'label', text: label }),
      choiceList(name, [['true', t('book.yes')], ['false', t('book.no')]], null, `answers.${q.code}`));
  }
  if (q.type === 'choice' && Array.isArray(q.choices)) {
    return h('div', { class: 'question' }, h('label', { for: name, text: label }),
      h('select', { id: name, name, 'data-field': `answers.${q.code}` }, h('option', { value: '' }, '—'),
        q.choices.map((c) => (typeof c === 'string' ? h('option', { value: c, text: c }) : h('option', { value: c.code, text: pick(c, 'label') || c.code })))));
  }
  return h('div', { class: 'question' }, h('label', { for: name, text: label }),
    h('input', { id: name, name, type: q.type === 'number' ? 'number' : 'text', 'data-field': `answers.${q.code}` }));
}

function answers(form, questions) {
  const out = {};
  for (const q of questions) {
    const name = `q_${q.code}`;
    if (q.type === 'bool') {
      const v = chosen(form, name);
      if (v !== null) out[q.code] = v === 'true';
    } else {
      const el = form.querySelector(`[name="${name}"]`);
      if (el && el.value !== '') out[q.code] = q.type === 'number' ? Number(el.value) : el.value;
    }
  }
  return out;
}

function quoteText(q) {
  if (q.reason === 'scheduled') return [t('quote.scheduled', { time: dayAndTime(q.earliest_at) }), false];
  if (q.predicted_arrival_min !== undefined && q.predicted_arrival_min !== null) {
    return q.within_promise
      ? [t('quote.minutes', { n: q.predicted_arrival_min }), false]
      : [t('quote.late', { n: q.predicted_arrival_min }), true];
  }
  return [t('quote.none', { time: dayAndTime(q.earliest_at) }), true];
}

async function bookScreen(code) {
  const [cat, people, places] = await Promise.all([
    catalog(), api.get('/v1/me/patients'), api.get('/v1/me/addresses'),
  ]);
  const service = services(cat).find((s) => s.code === code);
  if (!service) { location.hash = '#/home'; return; }
  const intake = Array.isArray(service.intake) ? service.intake : [];
  const consent = service.consent && service.consent.version ? service.consent : null;
  const error = h('p', { class: 'error', role: 'alert', id: 'book-error' });
  const emergency = h('div', { class: 'emergency', id: 'emergency', role: 'alert', hidden: true },
    h('strong', { text: t('emergency.title') }), h('p', { text: t('emergency.text') }),
    h('a', { href: 'tel:120', text: t('emergency.call') }));
  const quoteBig = h('p', { class: 'big', id: 'quote-text', text: t('quote.loading') });
  const quoteBox = h('section', { class: 'card quote', id: 'quote', 'aria-live': 'polite' },
    h('h3', { text: t('quote.title') }), quoteBig, h('p', { class: 'price', id: 'quote-price', text: t('quote.price', { price: money(service.price_cents) }) }));
  // A booking picks a day (up to the catalogue's horizon) and one of its
  // slots from GET /v1/slots: times a qualified nurse is free, never who.
  const horizon = Number(cat.booking_horizon_days) || 0;
  // Days as the service counts them (the organisation's time zone, China's),
  // whatever zone the phone is set to.
  const orgDay = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit' });
  const orgTime = new Intl.DateTimeFormat('zh-CN', { timeZone: 'Asia/Shanghai', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  const days = Array.from({ length: horizon + 1 }, (_, i) => {
    const day = orgDay.format(new Date(Date.now() + i * 86400000));
    const [, m, dd] = day.split('-').map(Number);
    const label = i === 0 ? t('book.today') : i === 1 ? t('book.tomorrow') : `${m}/${dd}`;
    return [day, label];
  });
  const slotBox = h('div', { class: 'slots', id: 'slots', 'aria-live': 'polite' });
  const when = h('div', { id: 'when', 'data-field': 'scheduled_for', hidden: true },
    h('div', { class: 'days' }, choiceList('day', days, days[0] ? days[0][0] : null, 'scheduled_for')),
    slotBox);
  const person = people.patients;
  const place = places.addresses;
  const contactName = h('input', { type: 'text', id: 'contact-name', 'data-field': 'contact.name', maxlength: 50, value: person[0] ? person[0].name : '' });
  const contactPhone = h('input', { type: 'tel', id: 'contact-phone', inputmode: 'numeric', 'data-field': 'contact.phone', maxlength: 20, value: load(PHONE_KEY) || '' });
  const form = h('form', { id: 'book-form', novalidate: true },
    h('span', { class: 'label', text: t('book.for') }),
    person.length ? choiceList('patient', person.map((p) => [p.id, `${p.name}（${p.relation}）`]), person[0].id, 'patient_id')
      : h('p', { class: 'field-error', 'data-field': 'patient_id', text: t('book.need_person') }),
    h('a', { class: 'button', href: '#/household', text: t('book.add_person') }),
    h('span', { class: 'label', text: t('book.address') }),
    place.length ? choiceList('address', place.map((a) => [a.id, `${a.label}：${a.text}${a.detail ? ` ${a.detail}` : ''}`]), place[0].id, 'location')
      : h('p', { class: 'field-error', 'data-field': 'location', text: t('book.need_address') }),
    h('a', { class: 'button', href: '#/household', text: t('book.add_address') }),
    h('span', { class: 'label', text: t('book.when') }),
    choiceList('when', [['now', t('book.now')], ['later', t('book.later')]], 'now', 'when'),
    when,
    intake.length ? h('h3', { text: t('book.questions') }) : null,
    intake.map(questionInput),
    h('label', { for: 'contact-name', text: t('book.contact_name') }), contactName,
    h('label', { for: 'contact-phone', text: t('book.contact') }), contactPhone,
    h('label', { for: 'notes', text: t('book.notes') }), h('textarea', { id: 'notes', 'data-field': 'notes', maxlength: 500 }),
    consent ? h('section', { class: 'card', 'data-field': 'consent_version' },
      h('h3', { text: t('book.consent') }), h('p', { text: pick(consent, 'text') }),
      h('label', { class: 'choice' }, h('input', { type: 'checkbox', id: 'consent' }), h('span', { text: t('book.consent_agree') }))) : null,
    quoteBox, emergency,
    h('button', { type: 'submit', class: 'primary', id: 'confirm', text: t('book.confirm'), disabled: !person.length || !place.length }),
    error);

  const selectedPlace = () => place.find((a) => a.id === chosen(form, 'address'));
  const later = () => chosen(form, 'when') === 'later';
  const scheduled = () => (later() ? chosen(form, 'slot') : null);
  let slotsAsked = 0;
  const loadSlots = async () => {
    const a = selectedPlace();
    const day = chosen(form, 'day');
    if (!later() || !a || !day) return;
    const mine = ++slotsAsked;
    slotBox.replaceChildren(h('p', { class: 'muted', text: t('slots.loading') }));
    try {
      const q = new URLSearchParams({ service_code: code, lat: a.location.lat, lng: a.location.lng, date: day });
      const list = await api.get(`/v1/slots?${q}`);
      if (mine !== slotsAsked) return;
      slotBox.replaceChildren(list.length
        ? choiceList('slot', list.map((x) => [x.start, `${orgTime.format(new Date(x.start))} · ${t('slots.nurses', { n: x.nurses })}`]), null, 'scheduled_for')
        : h('p', { class: 'muted', id: 'no-slots', text: t('slots.none') }));
    } catch (e) {
      if (mine === slotsAsked) slotBox.replaceChildren(h('p', { class: 'error', text: message(e) }));
    }
  };
  let asked = 0;
  const requote = async () => {
    const a = selectedPlace();
    if (!a) { quoteBig.textContent = t('quote.unavailable'); return; }
    const mine = ++asked;
    quoteBig.textContent = t('quote.loading');
    try {
      const body = { service_code: code, location: a.location };
      const at = scheduled();
      if (at) body.scheduled_for = at;
      const q = await api.post('/v1/quotes', body);
      if (mine !== asked) return;
      const [text, late] = quoteText(q);
      quoteBig.textContent = text;
      quoteBig.classList.toggle('late', late);
      quoteBox.dataset.predicted = q.predicted_arrival_min ?? '';
      document.getElementById('quote-price').textContent = t('quote.price', { price: money(q.price_cents) });
    } catch (e) {
      if (mine === asked) quoteBig.textContent = e.field ? message(e) : t('quote.unavailable');
    }
  };
  form.addEventListener('change', (ev) => {
    if (ev.target.name === 'when') when.hidden = !later();
    if (['when', 'day', 'address'].includes(ev.target.name)) loadSlots();
    if (ev.target.name === 'patient') {
      const p = person.find((x) => x.id === chosen(form, 'patient'));
      if (p) contactName.value = p.name;
    }
    if (['address', 'when', 'slot'].includes(ev.target.name)) requote();
  });
  const idempotencyKey = newKey();
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    emergency.hidden = true;
    const a = selectedPlace();
    const body = {
      service_code: code,
      patient_id: chosen(form, 'patient'),
      location: a ? a.location : null,
      address: a ? { text: a.text, detail: a.detail } : null,
      contact: { name: contactName.value, phone: contactPhone.value },
    };
    const notes = form.querySelector('#notes').value.trim();
    if (notes) body.notes = notes;
    const at = scheduled();
    if (later() && !at) {
      error.textContent = t('slots.pick');
      return;
    }
    if (at) body.scheduled_for = at;
    if (intake.length) body.answers = answers(form, intake);
    if (consent && form.querySelector('#consent').checked) body.consent_version = consent.version;
    const button = form.querySelector('#confirm');
    button.disabled = true;
    try {
      const order = await api.post('/v1/orders', body, { 'Idempotency-Key': idempotencyKey });
      if (contactPhone.value) store(PHONE_KEY, contactPhone.value);
      toast(t('book.placed'));
      location.hash = `#/order/${order.id}`;
    } catch (e) {
      if (e.code === 'emergency_call_120') {
        emergency.hidden = false;
        emergency.scrollIntoView({ block: 'center' });
      } else {
        showError(form, e, error);
      }
    } finally {
      button.disabled = false;
    }
  });
  show(t('book.title'),
    h('section', { class: 'card' }, h('div', { class: 'row' }, h('h2', { text: pick(service) }), h('span', { class: 'price', text: money(service.price_cents) })),
      h('p', { class: 'muted', text: t('home.minutes', { n: service.duration_min }) }),
      service.required_skills.length ? h('p', { text: t('home.includes', { what: skillNames(cat, service.required_skills) }) }) : null),
    form);
  requote();
}

// ---------------------------------------------------------------- one order

async function orderScreen(id) {
  const cat = await catalog();
  let order = await api.get(`/v1/orders/${encodeURIComponent(id)}`);
  const statusEl = h('p', { class: 'status', id: 'status' });
  const nurseEl = h('div', { id: 'nurse' });
  const etaEl = h('p', { class: 'eta', id: 'eta', 'aria-live': 'polite' });
  const svg = svgEl('minimap');
  svg.id = 'order-map';
  const map = new MiniMap(svg, { areas: state.config.areas, center: order.location, spanM: 3000 });
  map.setPin(order.location);
  const timeline = h('ol', { class: 'timeline', id: 'timeline' });
  const actions = h('div', { id: 'actions' });
  const summary = h('section', { class: 'card summary', id: 'summary', hidden: true });
  let eta = order.eta;
  let nursePos = order.nurse && order.nurse.location ? order.nurse.location : null;
  let recordAsked = false;

  const drawEta = () => {
    const moving = ['assigned', 'en_route', 'offered', 'pending', 'escalated'].includes(order.status);
    if (eta && moving) {
      const n = minutesUntil(eta);
      etaEl.textContent = n > 0 ? t('order.eta', { time: hhmm(eta), n }) : t('order.arrival_passed');
      etaEl.dataset.eta = eta;
      etaEl.hidden = false;
    } else if (order.status === 'scheduled' && order.scheduled_for) {
      etaEl.textContent = t('quote.scheduled', { time: dayAndTime(order.scheduled_for) });
      etaEl.hidden = false;
    } else {
      etaEl.hidden = true;
    }
  };

  const draw = () => {
    statusEl.textContent = t(`status.${order.status}`);
    statusEl.dataset.status = order.status;
    statusEl.className = `status${order.status === 'completed' ? ' done' : ''}${['cancelled', 'rejected'].includes(order.status) ? ' stopped' : ''}`;
    nurseEl.replaceChildren(...(order.nurse ? [
      h('p', { class: 'nurse-name', text: t('order.nurse', { name: order.nurse.name }) }),
      h('p', { class: 'nurse-phone', text: t('order.phone', { phone: order.nurse.phone_masked }) }),
    ] : []));
    map.setNurse(order.status === 'en_route' && nursePos ? nursePos : null);
    drawEta();
    timeline.replaceChildren(...order.timeline.map((e) => h('li', {},
      h('span', { text: t(`status.${e.status}`) }), h('span', { class: 'muted', text: dayAndTime(e.at) }))));
    const parts = [];
    if (CANCELLABLE.has(order.status)) {
      parts.push(h('button', { type: 'button', class: 'danger', id: 'cancel', text: t('order.cancel'), onclick: async () => {
        if (!window.confirm(t('order.cancel_confirm'))) return;
        try {
          order = await api.post(`/v1/orders/${order.id}/cancel`, { reason: t('order.cancel_reason') });
          toast(t('order.cancelled'));
          draw();
        } catch (e) { toast(message(e)); }
      } }));
    }
    if (order.status === 'completed' && !order.rating) parts.push(ratingForm(order, (o) => { order = o; draw(); }));
    if (order.rating) parts.push(h('p', { id: 'rated', text: t('order.rated', { stars: order.rating.stars }) }));
    actions.replaceChildren(...parts);
    if (order.status === 'completed' && !recordAsked) {
      recordAsked = true;
      loadSummary(order.id, summary);
    }
  };

  const svc = services(cat).find((s) => s.code === order.service_code);
  show(t('order.title'),
    h('section', { class: 'card' },
      h('h2', { text: svc ? pick(svc) : order.service_code }),
      order.patient ? h('p', { text: t('order.for', { name: order.patient.name }) }) : null,
      statusEl, nurseEl, etaEl),
    svg, h('p', { class: 'map-note', text: t('order.map_note') }),
    actions, summary,
    h('section', { class: 'card' }, h('h3', { text: t('order.timeline') }), timeline));
  draw();

  if (!FINAL.has(order.status)) {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const url = `${scheme}://${location.host}/v1/orders/${encodeURIComponent(order.id)}/live?token=${encodeURIComponent(state.token)}`;
    const connect = () => {
      const ws = new WebSocket(url);
      state.live = ws;
      ws.onmessage = (ev) => {
        let frame;
        try { frame = JSON.parse(ev.data); } catch (_) { return; }
        if (frame.type === 'order') {
          const { type: _type, ...rest } = frame;
          order = rest;
          eta = order.eta || eta;
          if (order.nurse && order.nurse.location) nursePos = order.nurse.location;
          draw();
        } else if (frame.type === 'nurse_location') {
          nursePos = frame.location;
          if (frame.eta) eta = frame.eta;
          map.setNurse(order.status === 'en_route' ? nursePos : null);
          drawEta();
        }
      };
      ws.onclose = () => {
        if (state.live === ws && !FINAL.has(order.status)) setTimeout(() => { if (state.live === ws) connect(); }, 3000);
      };
    };
    connect();
    state.timer = setInterval(drawEta, 15000);
  }
}

function ratingForm(order, done) {
  let stars = 5;
  const buttons = [1, 2, 3, 4, 5].map((n) => h('button', { type: 'button', 'data-stars': n, 'aria-pressed': n <= stars ? 'true' : 'false', 'aria-label': `${n}`, text: '★' }));
  const setStars = (n) => { stars = n; buttons.forEach((b, i) => b.setAttribute('aria-pressed', i < n ? 'true' : 'false')); };
  buttons.forEach((b, i) => b.addEventListener('click', () => setStars(i + 1)));
  const comment = h('textarea', { id: 'comment', maxlength: 500, 'data-field': 'comment' });
  const error = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'card', id: 'rating-form', novalidate: true },
    h('h3', { text: t('order.rate') }), h('div', { class: 'stars', 'data-field': 'stars' }, buttons),
    h('label', { for: 'comment', text: t('order.comment') }), comment,
    h('button', { type: 'submit', class: 'primary', id: 'send-rating', text: t('order.submit_rating') }), error);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const body = { stars };
      if (comment.value.trim()) body.comment = comment.value.trim();
      done(await api.post(`/v1/orders/${order.id}/rating`, body));
    } catch (e) { showError(form, e, error); }
  });
  return form;
}

async function loadSummary(id, box) {
  try {
    const record = await api.get(`/v1/orders/${encodeURIComponent(id)}/record`);
    const values = record && record.values ? record.values : {};
    const labels = Object.fromEntries((record.template || record.record_template || []).map((f) => [f.code, pick(f, 'label')]));
    box.replaceChildren(h('h3', { text: t('order.summary') }), h('dl', {},
      Object.entries(values).flatMap(([k, v]) => [h('dt', { text: labels[k] || k }), h('dd', { text: String(v) })])),
    record.notes ? h('p', { text: record.notes }) : null);
    box.hidden = false;
  } catch (_) {
    // No record yet (or the endpoint is not there): nothing to show.
  }
}

// ---------------------------------------------------------------- history

async function ordersScreen() {
  const [cat, page] = await Promise.all([catalog(), api.get('/v1/orders?limit=50')]);
  const list = page.orders.map((o) => {
    const svc = services(cat).find((s) => s.code === o.service_code);
    return h('a', { class: 'card order-item', href: `#/order/${o.id}`, 'data-order': o.id },
      h('div', { class: 'row' }, h('h3', { text: svc ? pick(svc) : o.service_code }), h('span', { class: 'muted', text: dayAndTime(o.created_at) })),
      h('p', { class: 'status-word', text: t(`status.${o.status}`) }));
  });
  show(t('orders.title'), list.length ? list : h('p', { class: 'muted', text: t('orders.empty') }));
}

// ---------------------------------------------------------------- household

async function householdScreen() {
  const [people, places] = await Promise.all([api.get('/v1/me/patients'), api.get('/v1/me/addresses')]);
  const year = new Date().getFullYear();
  const remove = (path) => async () => {
    try { await api.del(path); route(); } catch (e) { toast(message(e)); }
  };
  const personCards = people.patients.map((p) => h('div', { class: 'card person', 'data-person': p.id },
    h('div', { class: 'row' }, h('h3', { text: `${p.name}（${p.relation}）` }),
      h('button', { type: 'button', class: 'small', text: t('household.delete'), onclick: remove(`/v1/me/patients/${p.id}`) })),
    h('p', { text: `${t(`person.${p.sex}`)} · ${t('person.age', { n: year - p.birth_year })}` }),
    p.conditions ? h('p', { text: p.conditions }) : null, p.allergies ? h('p', { text: p.allergies }) : null));
  const placeCards = places.addresses.map((a) => h('div', { class: 'card place', 'data-address': a.id },
    h('div', { class: 'row' }, h('h3', { text: a.label }),
      h('button', { type: 'button', class: 'small', text: t('household.delete'), onclick: remove(`/v1/me/addresses/${a.id}`) })),
    h('p', { text: `${a.text}${a.detail ? ` ${a.detail}` : ''}` })));
  show(t('household.title'),
    h('h2', { text: t('household.people') }),
    personCards.length ? personCards : h('p', { class: 'muted', text: t('household.none_people') }),
    personForm(),
    h('h2', { text: t('household.addresses') }),
    placeCards.length ? placeCards : h('p', { class: 'muted', text: t('household.none_addresses') }),
    addressForm());
}

function personForm() {
  const error = h('p', { class: 'error', role: 'alert' });
  const field = (id, label, attrs = {}) => [h('label', { for: id, text: label }), h('input', { id, type: 'text', 'data-field': id.replace('p-', ''), ...attrs })];
  const form = h('form', { class: 'card', id: 'person-form', novalidate: true },
    h('h3', { text: t('person.add') }),
    field('p-name', t('person.name'), { maxlength: 50 }),
    h('span', { class: 'label', text: t('person.sex') }),
    choiceList('p-sex', [['female', t('person.female')], ['male', t('person.male')]], 'female', 'sex'),
    field('p-birth_year', t('person.birth_year'), { type: 'number', inputmode: 'numeric', min: 1900, max: new Date().getFullYear() }),
    field('p-relation', t('person.relation'), { maxlength: 20 }),
    field('p-conditions', t('person.conditions'), { maxlength: 500 }),
    field('p-allergies', t('person.allergies'), { maxlength: 500 }),
    h('button', { type: 'submit', class: 'primary', id: 'save-person', text: t('household.save') }), error);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = (id) => form.querySelector(`#${id}`).value.trim();
    const body = { name: v('p-name'), sex: chosen(form, 'p-sex'), birth_year: Number(v('p-birth_year')) || 0, relation: v('p-relation') };
    if (v('p-conditions')) body.conditions = v('p-conditions');
    if (v('p-allergies')) body.allergies = v('p-allergies');
    try { await api.post('/v1/me/patients', body); route(); } catch (e) { showError(form, e, error); }
  });
  return form;
}

function addressForm() {
  const error = h('p', { class: 'error', role: 'alert' });
  const status = h('p', { class: 'muted', id: 'locate-status' });
  let point = null;
  const svg = svgEl('minimap');
  svg.id = 'pick-map';
  svg.setAttribute('data-field', 'location');
  const map = new MiniMap(svg, { areas: state.config.areas, spanM: 4000, onPick: (p) => { point = p; } });
  const locate = h('button', { type: 'button', class: 'secondary', id: 'locate', text: t('address.locate'), onclick: () => {
    if (!navigator.geolocation) { status.textContent = t('address.locate_failed'); return; }
    status.textContent = t('address.locating');
    navigator.geolocation.getCurrentPosition((pos) => {
      point = { lat: pos.coords.latitude, lng: pos.coords.longitude };
      map.setPin(point);
      status.textContent = t('address.located');
    }, () => { status.textContent = t('address.locate_failed'); }, { enableHighAccuracy: true, timeout: 10000 });
  } });
  const form = h('form', { class: 'card', id: 'address-form', novalidate: true },
    h('h3', { text: t('address.add') }),
    h('label', { for: 'a-label', text: t('address.label') }), h('input', { id: 'a-label', type: 'text', 'data-field': 'label', maxlength: 20, value: getLang() === 'en' ? 'Home' : '家' }),
    h('label', { for: 'a-text', text: t('address.text') }), h('input', { id: 'a-text', type: 'text', 'data-field': 'text', maxlength: 200 }),
    h('label', { for: 'a-detail', text: t('address.detail') }), h('input', { id: 'a-detail', type: 'text', 'data-field': 'detail', maxlength: 200 }),
    h('span', { class: 'label', text: t('address.point') }), svg, locate, status,
    h('button', { type: 'submit', class: 'primary', id: 'save-address', text: t('household.save') }), error);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = (id) => form.querySelector(`#${id}`).value.trim();
    const body = { label: v('a-label'), text: v('a-text'), location: point || map.center };
    if (v('a-detail')) body.detail = v('a-detail');
    try { await api.post('/v1/me/addresses', body); route(); } catch (e) { showError(form, e, error); }
  });
  return form;
}

// ---------------------------------------------------------------- router

async function route() {
  stopLive();
  const [, screen, arg] = (location.hash || '#/home').split('/');
  const signedInNow = Boolean(state.token);
  document.getElementById('tabs').hidden = !signedInNow;
  document.getElementById('back').hidden = !signedInNow || !['book', 'order'].includes(screen);
  for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.dataset.tab === screen);
  if (!signedInNow) { signinScreen(); return; }
  try {
    if (screen === 'book' && arg) await bookScreen(decodeURIComponent(arg));
    else if (screen === 'order' && arg) await orderScreen(decodeURIComponent(arg));
    else if (screen === 'orders') await ordersScreen();
    else if (screen === 'household') await householdScreen();
    else if (screen === 'signin') { location.hash = '#/home'; }
    else await homeScreen();
  } catch (e) {
    if (!state.token) return;
    show(t('app.title'), h('p', { class: 'error', role: 'alert', text: message(e) }),
      h('button', { type: 'button', class: 'primary', text: t('back'), onclick: () => { location.hash = '#/home'; } }));
  }
}

function relabel() {
  document.getElementById('lang').textContent = t('lang.switch');
  document.getElementById('back').setAttribute('aria-label', t('back'));
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t);
}

async function boot() {
  setLang(getLang());
  relabel();
  try {
    const res = await fetch('config.json', { cache: 'no-store' });
    if (res.ok) state.config = await res.json();
  } catch (_) { /* defaults */ }
  const params = new URLSearchParams(location.search);
  if (params.get('org')) state.config.org = params.get('org');
  // A mini-program that signed the resident in natively passes the token
  // in the fragment (#token=…), which never reaches a server log.
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ''));
  if (fragment.get('token')) {
    store(TOKEN_KEY, fragment.get('token'));
    history.replaceState(null, '', `${location.pathname}${location.search}#/home`);
  }
  state.token = load(TOKEN_KEY);
  document.getElementById('lang').addEventListener('click', () => {
    setLang(getLang() === 'en' ? 'zh' : 'en');
    relabel();
    route();
  });
  document.getElementById('back').addEventListener('click', () => history.back());
  window.addEventListener('hashchange', route);
  route();
}

boot();
