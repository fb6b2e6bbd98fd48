// The coordinator dashboard: sign-in, the live map, KPIs, orders with their
// timeline and offers, manual assignment and cancel, and the roster.
// Everything goes through the coordinator API and its live feed; the DOM is
// built with text nodes only (no innerHTML), so no data can become markup.

import { Api, claims } from './api.js';
import { LiveFeed } from './live.js';
import { MapView } from './map.js';
import { lang, setLang, t, translateStatic } from './i18n.js';
import * as S from './state.js';
import { Governance } from './governance.js';
import { ReviewQueue, w as reviewWord } from './reviews.js';
import { AlarmCenter } from './alarms.js';
import { ForecastLayer } from './forecast.js';

const TOKEN_KEY = 'yixin.dashboard.token';
const OPEN_QUERY = `/v1/dispatch/orders?status=${S.OPEN.join(',')}&limit=500`;
const RECENT_QUERY = '/v1/dispatch/orders?limit=100';

const $ = (sel) => document.querySelector(sel);

const state = {
  config: { tile_url: '', tile_attribution: '', dev_login: false, dev_org: 'demo', stale_after_secs: 60 },
  token: null,
  claims: null,
  signedIn: false,
  areas: [],
  cells: [],
  overview: null,
  orders: new Map(),
  nurses: new Map(),
  services: new Map(),
  skills: [],
  /** Skill code → {name_zh, name_en}, from the catalogue. */
  skillNames: new Map(),
  view: 'map',
  selected: null,
  candidates: null,
  candidatesError: null,
  cancelReason: '',
  filter: '',
  editingSkills: null,
};

const api = new Api(() => state.token, () => {
  if (state.signedIn) signOut(t('signin.expired'));
});
let live = null;
let map = null;
/** Credentials, expiring certificates and the audit trail (governance.js). */
let governance = null;
/** The screening queue (reviews.js). */
let reviews = null;
/** Nurses' alarms and visits flagged for review (alarms.js). */
let alarms = null;
/** The demand forecast layer of the map (forecast.js). */
let forecast = null;
const timers = [];

// ---------------------------------------------------------------- DOM helpers

/** `h('li', {class: 'x', data: {id}, on: {click}}, 'text', child)`. */
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

function toast(text, kind = 'info') {
  const box = h('div', { class: `toast toast-${kind}` }, text);
  $('#toasts').append(box);
  setTimeout(() => box.remove(), kind === 'error' ? 8000 : 5000);
}

function time(iso) {
  if (!iso) return t('kpi.none');
  return new Date(iso).toLocaleTimeString(lang() === 'zh' ? 'zh-CN' : 'en-GB', { hour12: false });
}

const short = S.shortId;

function serviceName(code) {
  const s = state.services.get(code);
  if (!s) return code;
  return lang() === 'zh' ? s.name_zh : s.name_en;
}

function skillName(code) {
  return S.skillName(code, state.skillNames, lang());
}

/** Skill chips in words, the code kept in `data-skill` (and as the tooltip). */
function skillChips(codes) {
  return h('div', { class: 'chips' }, (codes || []).map((s) => h('span', { class: 'chip skill-chip', data: { skill: s }, title: s }, skillName(s))));
}

function nurseName(id) {
  const n = id && state.nurses.get(id);
  return n ? n.name : short(id);
}

function statusBadge(status) {
  return h('span', { class: `badge status-${status}`, data: { status } }, t(`status.${status}`));
}

/** A live countdown to `promised_by`, updated each second by `tick`. */
function countdown(order) {
  const span = h('span', { class: 'countdown', data: { promised: order.promised_by, orderId: order.id } });
  paintCountdown(span, order, Date.now());
  return span;
}

function paintCountdown(span, order, now) {
  const risk = S.orderRisk(order, now);
  span.classList.remove('risk-ok', 'risk-risk', 'risk-late', 'risk-done');
  span.classList.add(`risk-${risk.level}`);
  span.dataset.risk = risk.level;
  if (risk.level === 'done') {
    span.textContent = '';
    return;
  }
  const text = risk.left < 0 ? t('order.late', { t: S.clock(risk.left) }) : t('order.left', { t: S.clock(risk.left) });
  span.textContent = risk.predictedLate && risk.left >= 0 ? `${text} · ${t('order.predicted_late')}` : text;
}

// ---------------------------------------------------------------- sign-in

function showSignIn(message = '') {
  state.signedIn = false;
  $('#main').hidden = true;
  $('#tabs').hidden = true;
  $('#signout').hidden = true;
  $('#conn').hidden = true;
  $('#drawer').hidden = true;
  $('#who').textContent = '';
  $('#signin').hidden = false;
  $('#signin-error').textContent = message;
  const dev = $('#dev-signin');
  dev.hidden = !state.config.dev_login;
  dev.textContent = t('signin.dev', { org: state.config.dev_org });
}

async function devSignIn() {
  try {
    const res = await api.post('/v1/auth/dev-token', {
      role: 'coordinator',
      sub: 'dashboard-dev',
      org: state.config.dev_org,
    });
    await signIn(res.token);
  } catch (e) {
    $('#signin-error').textContent = t('error.generic', { message: e.message });
  }
}

async function signIn(token) {
  token = (token || '').trim();
  const c = claims(token);
  if (!c) {
    showSignIn(t('signin.bad_token', { message: 'not a JWT' }));
    return;
  }
  if (c.role !== 'coordinator') {
    showSignIn(t('signin.not_coordinator', { role: c.role }));
    return;
  }
  state.token = token;
  state.claims = c;
  try {
    state.overview = await api.get('/v1/dispatch/overview');
  } catch (e) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(t('signin.bad_token', { message: e.message }));
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  state.signedIn = true;
  $('#signin').hidden = true;
  $('#main').hidden = false;
  $('#tabs').hidden = false;
  $('#signout').hidden = false;
  $('#conn').hidden = false;
  $('#who').textContent = `${c.sub} · ${c.org}`;
  if (!map) {
    map = new MapView($('#map'), {
      tileUrl: state.config.tile_url,
      onSelectOrder: (id) => select(id),
      label: t,
    });
  }
  $('#attribution').textContent = state.config.tile_url ? state.config.tile_attribution : '';
  renderLegend();
  reviews = new ReviewQueue($('#view-reviews'), api, {
    serviceName,
    toast,
    onCount: (n) => { $('#tab-reviews').textContent = n ? `${reviewWord('tab')} (${n})` : reviewWord('tab'); },
  });
  reviews.refresh();
  if (alarms) alarms.stop();
  alarms = new AlarmCenter($('#alarms'), api, {
    nurseName: (id) => (state.nurses.get(id) || {}).name || id.slice(0, 8),
    toast,
    onChange: renderMap,
    onShow: (a) => {
      setView('map');
      if (map) map.centerOn(a.location.lat, a.location.lng);
    },
  });
  alarms.refresh();
  if (forecast) forecast.stop();
  forecast = new ForecastLayer(api, {
    onChange: () => { renderForecastToggle(); renderLegend(); renderMap(); },
    toast,
    label: t,
  });
  renderForecastToggle();
  setView(state.view);
  await loadAll();
  live = new LiveFeed(() => state.token, onFrame, onConnection);
  live.start();
  timers.push(setInterval(tick, 1000));
  timers.push(setInterval(() => refreshKpis(), 15000));
  timers.push(setInterval(() => Promise.all([refreshOrders(), refreshRoster()]).then(renderAll), 60000));
}

function signOut(message = '') {
  if (live) live.stop();
  if (alarms) alarms.stop();
  if (forecast) forecast.stop();
  live = null;
  while (timers.length) clearInterval(timers.pop());
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.orders.clear();
  state.nurses.clear();
  state.selected = null;
  showSignIn(message);
}

function tokenFromFragment() {
  const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (!m) return null;
  history.replaceState(null, '', location.pathname + location.search);
  return decodeURIComponent(m[1]);
}

// ---------------------------------------------------------------- data

async function loadAll() {
  const catalog = api.get('/v1/catalog').catch(() => null);
  const areas = api.get('/v1/dispatch/areas').catch((e) => {
    toast(t('error.generic', { message: e.message }), 'error');
    return [];
  });
  const [cat, ar] = await Promise.all([catalog, areas, refreshOrders(), refreshRoster(), refreshCells()]);
  state.areas = ar;
  if (cat) {
    const skills = new Set();
    for (const category of cat.categories || []) {
      for (const s of category.services || []) {
        state.services.set(s.code, s);
        for (const k of s.required_skills || []) skills.add(k);
      }
    }
    for (const k of cat.skills || []) {
      state.skillNames.set(k.code, k);
      skills.add(k.code);
    }
    state.skills = [...skills].sort();
  }
  renderAll();
}

async function refreshOrders() {
  try {
    const [open, recent] = await Promise.all([api.get(OPEN_QUERY), api.get(RECENT_QUERY)]);
    const next = new Map();
    for (const o of recent) next.set(o.id, o);
    for (const o of open) next.set(o.id, o);
    state.orders = next;
  } catch (e) {
    if (e.status !== 401) toast(t('error.generic', { message: e.message }), 'error');
  }
}

async function refreshRoster() {
  try {
    const list = await api.get('/v1/dispatch/nurses');
    state.nurses = new Map(list.map((n) => [n.id, n]));
  } catch (e) {
    if (e.status !== 401) toast(t('error.generic', { message: e.message }), 'error');
  }
}

async function refreshCells() {
  try {
    state.cells = (await api.get('/v1/dispatch/cells')).cells;
  } catch (_) {
    // Not fatal: the map is drawn without cells.
  }
}

async function refreshKpis() {
  try {
    const [overview] = await Promise.all([api.get('/v1/dispatch/overview'), refreshCells()]);
    state.overview = overview;
  } catch (_) {
    return;
  }
  renderKpis();
  renderMap();
}

/** Coalesces refreshes asked for by a burst of live events. */
const soon = (() => {
  const pending = new Map();
  return (key, fn, delay) => {
    if (pending.has(key)) return;
    pending.set(key, setTimeout(async () => {
      pending.delete(key);
      await fn();
    }, delay));
  };
})();

/** Nurses' states again from the API, redrawn; at most every 300 ms. */
const rosterSoon = () => soon('roster', async () => {
  await refreshRoster();
  renderRoster();
  renderMap();
}, 300);

/** The KPI strip again; at most every second. */
const kpisSoon = () => soon('kpis', refreshKpis, 1000);

// ---------------------------------------------------------------- live feed

function onConnection(status) {
  const conn = $('#conn');
  conn.dataset.state = status;
  conn.textContent = t(`conn.${status}`);
}

function onFrame(frame) {
  switch (frame.type) {
    case 'hello':
      state.overview = frame.overview;
      renderKpis();
      // Whatever happened while disconnected: read it all again.
      soon('all', async () => {
        await Promise.all([refreshOrders(), refreshRoster(), refreshCells()]);
        renderAll();
      }, 50);
      break;
    case 'order': {
      const { type, ...order } = frame;
      state.orders.set(order.id, order);
      if (reviews) reviews.onOrder(order);
      renderOrders();
      if (state.selected === order.id) {
        renderDrawer();
        if (S.WAITING.includes(order.status)) loadCandidates(order.id);
      }
      rosterSoon();
      kpisSoon();
      break;
    }
    case 'offer': {
      const order = state.orders.get(frame.order_id);
      if (order) state.orders.set(order.id, S.withOffer(order, frame));
      renderOrders();
      if (state.selected === frame.order_id) {
        renderDrawer();
        loadCandidates(frame.order_id);
      }
      kpisSoon();
      break;
    }
    case 'nurse_location': {
      const n = state.nurses.get(frame.nurse_id);
      if (!n) {
        soon('roster', async () => {
          await refreshRoster();
          renderAll();
        }, 300);
        break;
      }
      n.position = { lat: frame.location.lat, lng: frame.location.lng, accuracy_m: frame.accuracy_m, recorded_at: frame.at };
      renderMap();
      soon('roster-view', renderRoster, 1000);
      break;
    }
    case 'nurse_shift': {
      const n = state.nurses.get(frame.nurse_id);
      if (n) n.shift = frame.on ? 'on' : 'off';
      renderMap();
      renderRoster();
      rosterSoon();
      kpisSoon();
      break;
    }
    case 'alert':
      toast(t('alert.escalated', { id: short(frame.order_id) }), 'warn');
      break;
    case 'alarm':
      if (alarms) alarms.onFrame(frame);
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------- rendering

function nurseContext() {
  const all = [...state.orders.values()];
  return {
    jobs: S.jobs(all),
    offered: S.offeredNurses(all.filter((o) => S.OPEN.includes(o.status))),
    staleAfterSecs: state.config.stale_after_secs,
  };
}

function nursesWithState() {
  const ctx = nurseContext();
  const now = Date.now();
  return [...state.nurses.values()].map((n) => ({ ...n, state: S.nurseState(n, ctx, now) }));
}

function openOrders() {
  return S.sortOrders([...state.orders.values()].filter((o) => S.OPEN.includes(o.status)), Date.now());
}

function renderAll() {
  translateStatic();
  renderLegend();
  renderForecastToggle();
  renderKpis();
  renderOrders();
  renderRoster();
  renderDrawer();
  if (reviews) reviews.render();
  const dev = $('#dev-signin');
  dev.textContent = t('signin.dev', { org: state.config.dev_org });
  const conn = $('#conn');
  if (conn.dataset.state && conn.dataset.state !== 'off') conn.textContent = t(`conn.${conn.dataset.state}`);
}

function renderOrders() {
  renderOpenList();
  renderOrdersTable();
  renderMap();
}

function renderMap() {
  if (!map) return;
  map.set({
    areas: state.areas,
    cells: state.cells,
    nurses: nursesWithState(),
    orders: openOrders(),
    selected: state.selected,
    alarms: alarms ? alarms.markers() : [],
    forecast: forecastWithNames(),
  });
}

/** The forecast layer's data (null when off), suggestions named after their nurses. */
function forecastWithNames() {
  const f = forecast && forecast.layer();
  if (!f) return null;
  return {
    ...f,
    suggestions: f.suggestions.map((s) => ({ ...s, nurse_name: (state.nurses.get(s.nurse_id) || {}).name })),
  };
}

function renderForecastToggle() {
  const b = $('#forecast-toggle');
  const on = Boolean(forecast && forecast.visible);
  b.setAttribute('aria-pressed', String(on));
  b.classList.toggle('active', on);
  const f = forecast && forecast.layer();
  b.textContent = f ? t('forecast.toggle_on', { n: f.expected_orders.toFixed(1) }) : t('forecast.toggle');
}

function kpiCard(label, value, detail, cls = '') {
  return h('div', { class: `kpi ${cls}` },
    h('div', { class: 'kpi-label' }, label),
    h('div', { class: 'kpi-value' }, value),
    detail ? h('div', { class: 'kpi-detail' }, detail) : null);
}

function renderKpis() {
  const o = state.overview;
  const box = $('#kpis');
  if (!o) {
    box.replaceChildren();
    return;
  }
  const minutes = (v) => (v === null || v === undefined ? t('kpi.none') : t('kpi.minutes', { n: v }));
  const chips = h('div', { class: 'chips' }, S.OPEN
    .filter((s) => o.open_orders[s] > 0)
    .map((s) => h('span', { class: `chip status-${s}`, data: { status: s } }, `${t(`status.${s}`)} ${o.open_orders[s]}`)));
  const share = o.today.reached_in_time_share;
  const rating = o.today.average_rating;
  const shortage = S.shortCells(state.cells.length ? state.cells : o.cells);
  const cells = h('div', { class: 'chips' }, shortage.slice(0, 3).map((c) => h('span', { class: 'chip cell-chip' }, `${c.cell.slice(0, 7)}… ${c.free_nurses}/${c.waiting_orders}`)));
  box.replaceChildren(
    kpiCard(t('kpi.open'), String(o.open_orders.total), chips, 'kpi-open'),
    kpiCard(t('kpi.nurses'), String(o.nurses.on_shift), `${t('kpi.free')} ${o.nurses.free}`, 'kpi-nurses'),
    kpiCard(t('kpi.in_time'), share === null || share === undefined ? t('kpi.none') : `${Math.round(share * 100)}%`,
      t('kpi.in_time_detail', { reached: o.today.reached_in_time, due: o.today.due }), 'kpi-share'),
    kpiCard(t('kpi.accept'), minutes(o.today.median_minutes_to_accept), null, 'kpi-accept'),
    kpiCard(t('kpi.arrive'), minutes(o.today.median_minutes_to_arrive), null, 'kpi-arrive'),
    kpiCard(t('kpi.at_risk'), String(o.at_risk.count), null, o.at_risk.count > 0 ? 'kpi-risk alarm' : 'kpi-risk'),
    kpiCard(t('kpi.rating'), rating === null || rating === undefined ? t('kpi.none') : `${rating.toFixed(1)} ★`,
      t('kpi.rating_detail', { n: o.today.ratings || 0 }), 'kpi-rating'),
    kpiCard(t('kpi.cells'), shortage.length ? t('kpi.cells_short', { n: shortage.length }) : t('kpi.cells_ok'), cells,
      shortage.length ? 'kpi-cells warn' : 'kpi-cells'),
  );
}

function renderLegend() {
  const item = (cls, label) => h('span', { class: 'legend-item' }, h('i', { class: `swatch ${cls}` }), label);
  $('#legend').replaceChildren(
    item('sw-free', t('nurse.free')),
    item('sw-offered', t('nurse.offered')),
    item('sw-busy', t('nurse.busy')),
    item('sw-stale', t('nurse.stale')),
    item('sw-order', t('legend.order')),
    item('sw-late', t('legend.late')),
    item('sw-short', t('legend.short')),
    item('sw-surplus', t('legend.surplus')),
    item('sw-area', t('legend.area')),
    ...(forecast && forecast.visible ? [
      item('sw-forecast', t('legend.forecast')),
      item('sw-suggestion', t('legend.suggestion')),
    ] : []),
  );
}

function renderOpenList() {
  const list = openOrders();
  const ul = $('#open-orders');
  if (!list.length) {
    ul.replaceChildren(h('li', { class: 'empty' }, t('orders.none')));
    return;
  }
  ul.replaceChildren(...list.map((o) => h('li', {
    class: `order-item${state.selected === o.id ? ' selected' : ''}`,
    data: { orderId: o.id, status: o.status },
    tabindex: '0',
    on: { click: () => select(o.id), keydown: (e) => { if (e.key === 'Enter') select(o.id); } },
  },
  h('div', { class: 'line1' }, h('strong', {}, serviceName(o.service_code)), h('span', { class: 'short-id' }, short(o.id)), statusBadge(o.status)),
  h('div', { class: 'line2' }, countdown(o), o.nurse_id ? h('span', { class: 'nurse-name' }, nurseName(o.nurse_id)) : null),
  h('div', { class: 'line3' }, o.address.text))));
}

function renderOrdersTable() {
  const filterBox = $('#status-filter');
  if (!filterBox.options.length || filterBox.dataset.lang !== lang()) {
    filterBox.replaceChildren(h('option', { value: '' }, t('orders.all')), ...S.STATUSES.map((s) => h('option', { value: s }, t(`status.${s}`))));
    filterBox.value = state.filter;
    filterBox.dataset.lang = lang();
  }
  const rows = S.sortOrders([...state.orders.values()].filter((o) => !state.filter || o.status === state.filter), Date.now());
  const body = $('#orders-table tbody');
  if (!rows.length) {
    body.replaceChildren(h('tr', {}, h('td', { colspan: '8', class: 'empty' }, t('orders.none'))));
    return;
  }
  body.replaceChildren(...rows.map((o) => h('tr', {
    data: { orderId: o.id, status: o.status },
    class: state.selected === o.id ? 'selected' : '',
    on: { click: () => select(o.id) },
  },
  h('td', { class: 'short-id' }, short(o.id)),
  h('td', {}, time(o.created_at)),
  h('td', {}, serviceName(o.service_code)),
  h('td', {}, statusBadge(o.status)),
  h('td', {}, countdown(o)),
  h('td', {}, o.nurse_id ? nurseName(o.nurse_id) : t('kpi.none')),
  h('td', {}, o.address.text),
  h('td', {}, `${o.offers.length}/${o.declined_by.length}`))));
}

/** The roster table; left alone while a row's skills are being edited, unless `force`. */
function renderRoster(force = false) {
  if (state.editingSkills && !force) return;
  const body = $('#roster-table tbody');
  const nurses = nursesWithState().sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
  renderSkillPicker($('#add-skills'), []);
  if (!nurses.length) {
    body.replaceChildren(h('tr', {}, h('td', { colspan: '7', class: 'empty' }, t('roster.none'))));
    return;
  }
  const now = Date.now();
  body.replaceChildren(...nurses.map((n) => {
    const editing = state.editingSkills === n.id;
    const age = n.position && n.position.recorded_at ? Math.max(0, Math.round((now - Date.parse(n.position.recorded_at)) / 1000)) : null;
    const skills = editing
      ? h('form', { class: 'skill-edit', on: { submit: (e) => { e.preventDefault(); saveSkills(n.id, e.target); } } },
        renderSkillPicker(h('fieldset', { class: 'skills' }), n.skills),
        h('button', { type: 'submit', class: 'primary small' }, t('roster.save')))
      : skillChips(n.skills);
    return h('tr', { data: { nurseId: n.id, state: n.state }, class: n.active ? '' : 'inactive' },
      h('td', {}, n.name),
      h('td', {}, n.phone),
      h('td', {}, skills),
      h('td', {}, h('span', { class: `badge nurse-badge nurse-${n.state}`, data: { state: n.state } }, t(`nurse.${n.state}`))),
      h('td', {}, age === null ? t('kpi.none') : t('roster.ago', { n: age })),
      h('td', {}, n.current_order_id ? h('a', { href: '#', on: { click: (e) => { e.preventDefault(); select(n.current_order_id); } } }, short(n.current_order_id)) : t('kpi.none')),
      h('td', { class: 'actions' },
        editing ? null : h('button', { type: 'button', class: 'small edit-skills', on: { click: () => { state.editingSkills = n.id; renderRoster(true); } } }, t('roster.edit_skills')),
        h('button', { type: 'button', class: `small credentials cred-${n.verification || 'none'}`, on: { click: () => setView('governance', n.id) } }, t('roster.credentials')),
        h('button', {
          type: 'button',
          class: `small ${n.active ? 'danger deactivate' : 'activate'}`,
          on: { click: () => setActive(n, !n.active) },
        }, n.active ? t('roster.deactivate') : t('roster.activate'))));
  }));
}

/** Skill checkboxes (from the catalogue) into `box`, `checked` ticked; a text field if the catalogue is unavailable. */
function renderSkillPicker(box, checked) {
  const legend = box.querySelector('legend');
  const keep = box.id === 'add-skills' ? [...box.querySelectorAll('input:checked')].map((i) => i.value) : checked;
  if (!state.skills.length) {
    box.replaceChildren(...(legend ? [legend] : []), h('input', { name: 'skills_text', value: keep.join(','), placeholder: 'wound_care,neonatal' }));
    return box;
  }
  box.replaceChildren(...(legend ? [legend] : []), ...state.skills.map((s) => h('label', { class: 'skill' },
    h('input', { type: 'checkbox', name: 'skills', value: s, checked: keep.includes(s) }), skillName(s))));
  return box;
}

function pickedSkills(form) {
  const text = form.querySelector('[name=skills_text]');
  if (text) return text.value.split(',').map((s) => s.trim()).filter(Boolean);
  return [...form.querySelectorAll('input[name=skills]:checked')].map((i) => i.value);
}

// ---------------------------------------------------------------- the order drawer

function select(id) {
  if (state.selected !== id) state.cancelReason = '';
  state.selected = id;
  state.candidates = null;
  state.candidatesError = null;
  renderDrawer();
  renderOrders();
  const order = state.orders.get(id);
  if (order && S.WAITING.includes(order.status)) loadCandidates(id);
  // Read it again even when known: a rating, for one, comes with no live frame.
  api.get(`/v1/dispatch/orders/${encodeURIComponent(id)}`).then((o) => {
    state.orders.set(o.id, o);
    if (state.selected !== o.id) return;
    renderDrawer();
    if (!order && S.WAITING.includes(o.status)) loadCandidates(o.id);
  }).catch((e) => toast(t('error.generic', { message: e.message }), 'error'));
}

async function loadCandidates(id) {
  try {
    const res = await api.get(`/v1/dispatch/orders/${encodeURIComponent(id)}/candidates`);
    if (state.selected !== id) return;
    state.candidates = res;
    state.candidatesError = null;
  } catch (e) {
    if (state.selected !== id) return;
    state.candidates = null;
    state.candidatesError = e.code === 'not_assignable' ? null : e.message;
  }
  renderDrawer();
}

function closeDrawer() {
  state.selected = null;
  state.candidates = null;
  renderDrawer();
  renderOrders();
}

function field(label, value) {
  return h('div', { class: 'field' }, h('span', { class: 'field-label' }, label), h('span', { class: 'field-value' }, value));
}

function renderDrawer() {
  const drawer = $('#drawer');
  const o = state.selected && state.orders.get(state.selected);
  if (!o) {
    drawer.hidden = true;
    drawer.replaceChildren();
    delete drawer.dataset.orderId;
    return;
  }
  drawer.hidden = false;
  drawer.dataset.orderId = o.id;
  drawer.dataset.status = o.status;
  const timeline = h('ol', { class: 'timeline' }, o.timeline.map((s) => h('li', { data: { status: s.status } }, statusBadge(s.status), ' ', time(s.at))));
  const offers = o.offers.length
    ? h('table', { class: 'grid compact offers' }, h('tbody', {}, o.offers.map((f) => h('tr', { data: { offerId: f.id, status: f.status } },
      h('td', {}, nurseName(f.nurse_id)),
      h('td', {}, h('span', { class: `badge offer-${f.status}` }, t(`offer.${f.status}`))),
      h('td', {}, f.eta_min === null || f.eta_min === undefined ? '' : t('order.eta_min', { n: f.eta_min })),
      h('td', {}, time(f.created_at)),
      h('td', {}, f.decline_reason || '')))))
    : h('p', { class: 'muted' }, t('order.no_offers'));

  const sections = [
    h('header', { class: 'drawer-head' },
      h('h2', {}, serviceName(o.service_code)), statusBadge(o.status),
      h('button', { type: 'button', class: 'ghost close', on: { click: closeDrawer }, 'aria-label': t('order.close') }, '×')),
    h('div', { class: 'drawer-count' }, countdown(o)),
    h('div', { class: 'fields' },
      field('ID', h('span', { class: 'short-id', title: o.id }, short(o.id))),
      requiredSkills(o.service_code),
      field(t('order.promised_by'), time(o.promised_by)),
      field(t('order.eta'), time(o.eta)),
      field(t('order.nurse'), o.nurse_id ? nurseName(o.nurse_id) : t('kpi.none')),
      field(t('order.address'), [o.address.text, o.address.detail].filter(Boolean).join(' ')),
      field(t('order.contact'), `${o.contact.name} ${o.contact.phone}`),
      o.notes ? field(t('order.notes'), o.notes) : null,
      o.cancel_reason ? field(t('status.cancelled'), o.cancel_reason) : null,
      o.rating ? field(t('order.rating'), ratingView(o.rating)) : null),
    h('h3', {}, t('order.timeline')), timeline,
    h('h3', {}, t('order.offers')), offers,
  ];
  if (S.WAITING.includes(o.status)) sections.push(renderCandidates(o));
  if (S.CANCELLABLE.includes(o.status)) {
    sections.push(h('form', {
      class: 'cancel-form',
      // The reason from the state: a re-render (a live update, the detail read
      // again) may replace the field between typing and submitting.
      on: { submit: (e) => { e.preventDefault(); cancelOrder(o.id, state.cancelReason); } },
    },
    h('h3', {}, t('order.cancel')),
    // Kept in the state: a live update re-renders the drawer while typing.
    h('input', {
      name: 'reason',
      maxlength: '500',
      placeholder: t('order.cancel_reason'),
      value: state.cancelReason,
      on: { input: (e) => { state.cancelReason = e.target.value; } },
    }),
    h('button', { type: 'submit', class: 'danger cancel-order' }, t('order.cancel_confirm'))));
  }
  drawer.replaceChildren(...sections.filter(Boolean));
}

/** The skills the order's service requires, in words. */
function requiredSkills(code) {
  const s = state.services.get(code);
  return s && s.required_skills ? field(t('order.skills'), skillChips(s.required_skills)) : null;
}

/** The resident's rating: stars, comment, when. */
function ratingView(r) {
  return h('span', { class: 'rating', data: { stars: String(r.stars) } },
    h('span', { class: 'stars', title: `${r.stars}/5` }, S.stars(r.stars)),
    r.comment ? h('span', { class: 'rating-comment' }, ` “${r.comment}”`) : null,
    r.rated_at ? h('span', { class: 'muted' }, ` · ${time(r.rated_at)}`) : null);
}

function renderCandidates(o) {
  const box = h('section', { class: 'assign' }, h('h3', {}, t('order.assign'), ' ', h('small', { class: 'muted' }, t('order.assign_hint'))));
  if (state.candidatesError) {
    box.append(h('p', { class: 'error' }, state.candidatesError));
    return box;
  }
  const c = state.candidates;
  if (!c || c.order_id !== o.id) {
    box.append(h('p', { class: 'muted' }, '…'));
    return box;
  }
  if (!c.candidates.length) {
    box.append(h('p', { class: 'muted' }, t('order.no_candidates')));
    return box;
  }
  box.append(h('table', { class: 'grid compact candidates' }, h('tbody', {}, c.candidates.map((n) => h('tr', {
    data: { nurseId: n.nurse_id, state: n.state },
    class: n.assignable ? '' : 'unavailable',
  },
  h('td', {}, n.name, candidateSkills(n)),
  h('td', {}, h('span', { class: `badge nurse-badge nurse-${n.state}` }, t(`nurse.${n.state}`))),
  h('td', {}, n.eta_min === null ? t('kpi.none') : t('order.eta_min', { n: n.eta_min })),
  h('td', {}, n.distance_m === null ? '' : t('order.km', { n: (n.distance_m / 1000).toFixed(1) })),
  h('td', { class: n.in_time === false ? 'late' : '' }, n.in_time === null ? '' : n.in_time ? t('order.in_time') : t('order.too_late')),
  h('td', { class: 'muted' }, [n.reason ? reasonText(n) : '', n.declined ? t('order.declined_before') : '', n.holds_offer ? t('order.holds_offer') : ''].filter(Boolean).join(' · ')),
  h('td', {}, h('button', {
    type: 'button',
    class: 'primary small assign-button',
    disabled: !n.assignable,
    on: { click: (e) => assign(o.id, n, e.target) },
  }, t('order.assign_button'))))))));
  return box;
}

/** A candidate's skills in words (from the roster), under her name. */
function candidateSkills(c) {
  const n = state.nurses.get(c.nurse_id);
  if (!n || !n.skills) return null;
  return h('div', { class: 'candidate-skills' }, skillChips(n.skills));
}

/** Why a candidate cannot be assigned; missing skills named. */
function reasonText(c) {
  const base = t(`reason.${c.reason}`);
  if (c.reason !== 'missing_skills' || !c.missing_skills || !c.missing_skills.length) return base;
  const zh = lang() === 'zh';
  return `${base}${zh ? '：' : ': '}${c.missing_skills.map(skillName).join(zh ? '、' : ', ')}`;
}

async function assign(orderId, nurse, button) {
  button.disabled = true;
  try {
    const order = await api.post(`/v1/dispatch/orders/${encodeURIComponent(orderId)}/assign`, { nurse_id: nurse.nurse_id });
    state.orders.set(order.id, order);
    toast(t('order.assigned_ok', { name: nurse.name }), 'ok');
    await refreshRoster();
    renderAll();
  } catch (e) {
    toast(t('error.generic', { message: e.message }), 'error');
    loadCandidates(orderId);
  }
}

async function cancelOrder(orderId, reason) {
  try {
    const order = await api.post(`/v1/dispatch/orders/${encodeURIComponent(orderId)}/cancel`, reason ? { reason } : {});
    state.orders.set(order.id, order);
    state.cancelReason = '';
    toast(t('order.cancelled_ok'), 'ok');
    await refreshRoster();
    renderAll();
  } catch (e) {
    toast(t('error.generic', { message: e.message }), 'error');
  }
}

// ---------------------------------------------------------------- roster actions

async function addNurse(form) {
  $('#add-error').textContent = '';
  const body = { name: form.name.value.trim(), phone: form.phone.value.trim(), skills: pickedSkills(form) };
  try {
    const n = await api.post('/v1/dispatch/nurses', body);
    toast(t('roster.added', { name: n.name }), 'ok');
    form.reset();
    await refreshRoster();
    renderRoster();
    renderMap();
  } catch (e) {
    $('#add-error').textContent = e.field ? `${e.field}: ${e.message}` : e.message;
  }
}

async function saveSkills(id, form) {
  try {
    await api.patch(`/v1/dispatch/nurses/${encodeURIComponent(id)}`, { skills: pickedSkills(form) });
    state.editingSkills = null;
    toast(t('roster.saved'), 'ok');
    await refreshRoster();
    renderRoster(true);
  } catch (e) {
    toast(t('error.generic', { message: e.field ? `${e.field}: ${e.message}` : e.message }), 'error');
  }
}

async function setActive(nurse, active) {
  try {
    await api.patch(`/v1/dispatch/nurses/${encodeURIComponent(nurse.id)}`, { active });
    await refreshRoster();
    renderRoster();
    renderMap();
  } catch (e) {
    toast(t('error.generic', { message: e.message }), 'error');
  }
}

// ---------------------------------------------------------------- views and the clock

function setView(view, nurseId) {
  state.view = view;
  for (const b of document.querySelectorAll('#tabs .tab')) b.classList.toggle('active', b.dataset.view === view);
  for (const v of ['map', 'orders', 'roster', 'reviews', 'governance']) $(`#view-${v}`).hidden = v !== view;
  if (view === 'reviews' && reviews) reviews.refresh();
  if (view === 'map' && map) map.schedule();
  if (view === 'governance') {
    governance ??= new Governance({
      api,
      root: $('#view-governance'),
      nurses: () => [...state.nurses.values()],
      toast,
      onChange: async () => {
        await refreshRoster();
        renderRoster();
      },
    });
    governance.show(nurseId);
  }
}

/** Each second: countdowns in place (no re-render, so clicks are never lost), and the map. */
function tick() {
  const now = Date.now();
  for (const span of document.querySelectorAll('.countdown[data-order-id]')) {
    const o = state.orders.get(span.dataset.orderId);
    if (o) paintCountdown(span, o, now);
  }
  if (map && state.view === 'map') map.schedule();
  if (reviews && state.view === 'reviews') reviews.tick(now);
}

async function boot() {
  translateStatic();
  $('#lang').value = lang();
  $('#lang').addEventListener('change', (e) => {
    setLang(e.target.value);
    renderAll();
  });
  $('#signout').addEventListener('click', () => signOut());
  $('#dev-signin').addEventListener('click', devSignIn);
  $('#token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    signIn($('#token-input').value);
  });
  $('#add-nurse').addEventListener('submit', (e) => {
    e.preventDefault();
    addNurse(e.target);
  });
  $('#status-filter').addEventListener('change', (e) => {
    state.filter = e.target.value;
    renderOrdersTable();
  });
  for (const b of document.querySelectorAll('#tabs .tab')) b.addEventListener('click', () => setView(b.dataset.view));
  $('#zoom-in').addEventListener('click', () => map && map.zoom(1.4));
  $('#zoom-out').addEventListener('click', () => map && map.zoom(1 / 1.4));
  $('#zoom-fit').addEventListener('click', () => map && map.fit());
  $('#forecast-toggle').addEventListener('click', () => forecast && forecast.toggle());
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && state.selected) closeDrawer();
  });
  window.addEventListener('hashchange', () => {
    const token = tokenFromFragment();
    if (token) signIn(token);
  });
  try {
    state.config = { ...state.config, ...(await api.get('/dashboard/config.json')) };
  } catch (_) {
    // Defaults: no tiles, no dev sign-in.
  }
  const token = tokenFromFragment() || sessionStorage.getItem(TOKEN_KEY);
  if (token) await signIn(token);
  else showSignIn();
}

boot();
