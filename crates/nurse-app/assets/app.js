// The nurse app: sign-in, shift, position sharing, offers, the job screen
// with its steps, today's jobs. Everything goes through the nurse API and
// its socket; this file wires them to the page.

import { Api, ApiError, claims } from './api.js';
import { NurseSocket } from './socket.js';
import { FixBuffer, toFix, ageText } from './fixes.js';
import { nextStep, stepsDone, secondsLeft, distanceText, age, STEPS } from './state.js';
import { navLinks } from './maps.js';
import { ring, unlockAudio, keepAwake, awake } from './alert.js';
import { t, applyI18n, getLang, setLang } from './i18n.js';
import { Safety } from './sos.js';
import { Suggestion } from './suggestion.js';

const TOKEN_KEY = 'yixin.nurse.token';
const NEXT_FREE_AT_KEY = 'yixin.nurse.next_free_at';
const $ = (id) => document.getElementById(id);

const state = {
  config: { org: 'demo', dev_login: false, max_accuracy_m: 500, max_fixes_per_batch: 100, stale_after_secs: 60 },
  org: 'demo',
  token: null,
  me: null,
  shift: 'off',
  offer: null,
  offerTotal: 1,
  job: null,
  // Her next job (a chained one), shown under the current one.
  next: null,
  nextNote: '',
  // When the current visit should end, from the chained offer she won:
  // {order_id, at} (the job itself does not carry it).
  nextFreeAt: null,
  jobs: [],
  catalog: null,
  view: 'signin',
  phone: '',
  lastFixAt: null,
  geoError: null,
  conn: 'off',
};

const api = new Api(
  () => state.token,
  () => signOut(t('signin.expired')),
);
const buffer = new FixBuffer(720);
// The latest fix this page saw (the SOS and `arrived` send it).
let latestFix = null;
const safety = new Safety({ api, position: () => latestFix });
let suggestion = null;
const socket = new NurseSocket({
  url: () => {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}/v1/nurse/ws?token=${encodeURIComponent(state.token || '')}`;
  },
  buffer,
  maxBatch: 100,
  onFrame,
  onState: (conn, attempts) => {
    state.conn = conn;
    renderStatus();
    // A socket that keeps failing may mean a revoked token: ask over HTTP,
    // which answers 401 plainly (a failed handshake does not).
    if (conn === 'offline' && attempts > 0 && attempts % 3 === 0 && state.token) {
      api.get('/v1/nurse/me').catch(() => {});
    }
  },
});

// ------------------------------------------------------------------ helpers

function show(view) {
  state.view = view;
  for (const id of ['signin', 'home', 'job']) $(id).hidden = id !== view;
  $('status').hidden = view === 'signin';
  window.scrollTo(0, 0);
}

function message(err) {
  if (err instanceof ApiError && err.code === 'network') return t('error.network');
  return err && err.message ? err.message : String(err);
}

/** The catalogue's services, whichever way they are grouped. */
function services() {
  const c = state.catalog;
  if (!c) return [];
  if (Array.isArray(c.services)) return c.services;
  return (c.categories || []).flatMap((cat) => cat.services || []);
}

function service(code) {
  return services().find((s) => s.code === code) || null;
}

function serviceName(code, names) {
  const s = names || service(code);
  if (!s) return code;
  return (getLang() === 'zh' ? s.name_zh : s.name_en) || code;
}

function timeText(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString(getLang() === 'zh' ? 'zh-CN' : 'en-GB', { hour: '2-digit', minute: '2-digit' });
}

function flagText(f) {
  if (typeof f === 'string') return f;
  if (!f || typeof f !== 'object') return '';
  const zh = getLang() === 'zh';
  return (zh ? f.text_zh || f.label_zh : f.text_en || f.label_en) || f.text || f.label || f.code || '';
}

function renderFlags(el, flags) {
  el.replaceChildren();
  const list = Array.isArray(flags) ? flags.map(flagText).filter(Boolean) : [];
  for (const f of list) {
    const li = document.createElement('li');
    li.textContent = `⚠ ${f}`;
    el.append(li);
  }
  el.hidden = list.length === 0;
}

// ------------------------------------------------------------------ sign-in

function signinError(text) {
  $('signin-error').textContent = text || '';
}

async function sendCode(ev) {
  ev.preventDefault();
  signinError('');
  $('signin-info').textContent = '';
  const phone = $('phone').value.trim();
  try {
    const res = await api.post('/v1/auth/otp', { phone, role: 'nurse', org: state.org });
    state.phone = phone;
    $('phone-form').hidden = true;
    $('code-form').hidden = false;
    const min = Math.max(1, Math.round(((res && res.expires_in) || 300) / 60));
    $('signin-info').textContent = t('signin.code_sent', { phone, min });
    $('code').focus();
  } catch (err) {
    if (err.status === 404 && err.code !== 'not_on_roster') signinError(t('signin.no_otp'));
    else if (err.code === 'not_on_roster') signinError(t('signin.not_nurse', { message: message(err) }));
    else signinError(t('signin.failed', { message: message(err) }));
  }
}

async function verifyCode(ev) {
  ev.preventDefault();
  signinError('');
  try {
    const res = await api.post('/v1/auth/otp/verify', {
      phone: state.phone,
      code: $('code').value.trim(),
      role: 'nurse',
      org: state.org,
    });
    await signIn(res.token);
  } catch (err) {
    if (err.code === 'not_on_roster') signinError(t('signin.not_nurse', { message: message(err) }));
    else signinError(t('signin.failed', { message: message(err) }));
  }
}

async function devSignIn(ev) {
  ev.preventDefault();
  signinError('');
  try {
    const res = await api.post('/v1/auth/dev-token', { role: 'nurse', sub: $('dev-sub').value.trim(), org: state.org });
    await signIn(res.token);
  } catch (err) {
    signinError(t('signin.failed', { message: message(err) }));
  }
}

async function signIn(token) {
  state.token = token;
  try {
    state.me = await api.get('/v1/nurse/me');
  } catch (err) {
    if (err.code === 'network' && claims(token)) {
      // Offline start with a saved token: work on; the socket retries.
      state.me = null;
      await enter();
      return;
    }
    state.token = null;
    signinError(err.status === 403 || err.status === 404 ? t('signin.not_nurse', { message: message(err) }) : t('signin.failed', { message: message(err) }));
    return;
  }
  try {
    localStorage.setItem(TOKEN_KEY, token);
  } catch (_) {
    // kept for this page only
  }
  await enter();
}

function signOut(why) {
  socket.stop();
  safety.stop();
  stopGeo();
  keepAwake(false);
  state.token = null;
  state.me = null;
  state.job = null;
  state.offer = null;
  hideOffer();
  try {
    localStorage.removeItem(TOKEN_KEY);
  } catch (_) {
    // nothing kept
  }
  $('phone-form').hidden = false;
  $('code-form').hidden = true;
  $('signin-info').textContent = '';
  signinError(why || '');
  show('signin');
}

// ------------------------------------------------------------------ after sign-in

async function enter() {
  $('who').textContent = state.me ? state.me.name : '';
  state.shift = state.me ? state.me.shift : 'off';
  show('home');
  renderShift();
  socket.start();
  safety.start();
  if (state.shift === 'on') startShiftSide();
  try {
    state.catalog = await api.get('/v1/catalog');
  } catch (_) {
    state.catalog = null; // codes instead of names
  }
  try {
    await loadJobs();
  } catch (_) {
    // the socket's greeting brings it too
  }
  renderHome();
  loadToday();
}

// Her current and next job as the server has them.
async function loadJobs() {
  const jobs = (await api.get('/v1/nurse/jobs')) || [];
  const current = jobs.find((j) => !j.next);
  if (current) {
    const same = state.job && state.job.order_id === current.order_id;
    state.job = { ...(same ? state.job : {}), ...current };
  }
  state.next = jobs.find((j) => j.next) || null;
}

async function loadToday() {
  try {
    state.jobs = await api.get('/v1/nurse/jobs/today');
  } catch (_) {
    return;
  }
  renderToday();
}

function renderToday() {
  const ul = $('today');
  ul.replaceChildren();
  for (const j of state.jobs) {
    const li = document.createElement('li');
    li.className = 'today-item';
    li.dataset.status = j.status;
    const name = document.createElement('strong');
    name.textContent = serviceName(j.service.code, j.service);
    const chip = document.createElement('span');
    chip.className = 'chip';
    chip.dataset.status = j.status;
    chip.textContent = t(`status.${j.status}`);
    const meta = document.createElement('span');
    meta.className = 'note';
    meta.textContent = j.address ? `${timeText(j.created_at)} · ${j.address}` : timeText(j.created_at);
    li.append(name, chip, meta);
    if (state.job && state.job.order_id === j.order_id && nextStep(j.status)) {
      li.classList.add('active');
      li.addEventListener('click', () => openJob());
    }
    ul.append(li);
  }
  $('today-empty').hidden = state.jobs.length > 0;
}

function renderShift() {
  const on = state.shift === 'on';
  const btn = $('shift');
  btn.dataset.on = String(on);
  btn.textContent = on ? t('shift.off') : t('shift.on');
  $('shift-note').textContent = on ? t('shift.on_note') : t('shift.off_note');
}

// The next job's card, on the home screen and under the current job: the
// service and, since she won it, the address; it starts when the current
// visit ends.
function renderNext() {
  for (const id of ['next-job', 'job-next']) {
    const card = $(id);
    const next = state.next;
    if (!next && !state.nextNote) {
      card.hidden = true;
      continue;
    }
    card.hidden = false;
    card.dataset.state = next ? 'next' : 'taken-back';
    card.querySelector('.next-service').textContent = next ? serviceName(next.service_code) : '';
    const addr = (next && next.address) || {};
    card.querySelector('.next-address').textContent = [addr.text, addr.detail].filter(Boolean).join(' ');
    const freeAt = next && state.nextFreeAt && state.nextFreeAt.order_id === next.order_id ? state.nextFreeAt.at : null;
    card.querySelector('.next-note').textContent = next
      ? freeAt ? t('next.after_time', { time: timeText(freeAt) }) : t('next.after')
      : t(state.nextNote);
  }
}

function renderHome() {
  renderNext();
  renderShift();
  const link = $('current-job');
  const job = state.job;
  if (job && nextStep(job.status)) {
    link.hidden = false;
    link.textContent = t('current.job', { service: serviceName(job.service_code), status: t(`status.${job.status}`) });
  } else {
    link.hidden = true;
  }
}

async function toggleShift() {
  unlockAudio(); // a user gesture: offers can ring from now on
  const next = state.shift === 'on' ? 'off' : 'on';
  $('shift-error').textContent = '';
  $('shift').disabled = true;
  try {
    await api.post('/v1/nurse/shift', { state: next });
    state.shift = next;
    if (next === 'on') startShiftSide();
    else {
      stopGeo();
      keepAwake(false);
      hideOffer();
    }
  } catch (err) {
    $('shift-error').textContent = t('shift.failed', { message: message(err) });
  } finally {
    $('shift').disabled = false;
  }
  renderShift();
  renderStatus();
}

function startShiftSide() {
  startGeo();
  keepAwake(true);
}

// ------------------------------------------------------------------ position

let watchId = null;
let heartbeat = null;

function onPosition(pos) {
  state.geoError = null;
  const fix = toFix(pos);
  if (fix.accuracy_m > state.config.max_accuracy_m) return;
  if (buffer.push(fix)) state.lastFixAt = Date.parse(fix.ts);
  latestFix = fix;
  renderStatus();
}

function onGeoError(err) {
  // A watch that saw no movement within its timeout reports TIMEOUT; a
  // nurse standing still with a fresh fix (the heartbeat's) is not lost.
  const fresh = state.lastFixAt !== null && Date.now() - state.lastFixAt < state.config.stale_after_secs * 1000;
  if (err && err.code === 3 && fresh) return;
  state.geoError = err && err.code === 1 ? t('fix.denied') : t('fix.unavailable');
  renderStatus();
}

function startGeo() {
  if (watchId !== null || !navigator.geolocation) return;
  const opts = { enableHighAccuracy: true, maximumAge: 5000, timeout: 30000 };
  watchId = navigator.geolocation.watchPosition(onPosition, onGeoError, opts);
  // A nurse standing still gets no new positions from the watch; ask now
  // and then so the dispatcher never sees her as stale.
  heartbeat = setInterval(() => {
    navigator.geolocation.getCurrentPosition(onPosition, onGeoError, { enableHighAccuracy: true, maximumAge: 0, timeout: 20000 });
  }, 15000);
}

function stopGeo() {
  if (watchId !== null && navigator.geolocation) navigator.geolocation.clearWatch(watchId);
  watchId = null;
  clearInterval(heartbeat);
  heartbeat = null;
}

setInterval(() => {
  if (state.token) socket.flush();
}, 2000);

function renderStatus() {
  const conn = $('conn');
  conn.dataset.state = state.conn;
  conn.textContent = t(`conn.${state.conn}`);
  let fix;
  if (state.shift !== 'on') fix = '';
  else if (state.geoError) fix = state.geoError;
  else if (state.lastFixAt === null) fix = t('fix.none');
  else fix = t('fix.age', { age: ageText(Date.now() - state.lastFixAt, getLang()) });
  if (state.shift === 'on' && buffer.size > 0 && state.conn !== 'live') fix += ` ${t('fix.buffered', { n: buffer.size })}`;
  $('fix-age').textContent = fix;
  $('awake').hidden = !awake();
}
setInterval(renderStatus, 1000);

// ------------------------------------------------------------------ socket frames

function onFrame(frame) {
  safety.onFrame(frame);
  if (suggestion) suggestion.onFrame(frame);
  switch (frame.type) {
    case 'offer':
      showOffer(frame);
      break;
    case 'assigned':
      hideOffer();
      if (frame.next) {
        state.next = { ...frame };
        delete state.next.type;
        state.nextNote = '';
        renderNext();
        loadToday();
        break;
      }
      if (state.next && state.next.order_id === frame.order_id) {
        state.next = null;
        rememberFreeAt(null);
      }
      state.job = { ...(state.job && state.job.order_id === frame.order_id ? state.job : {}), ...frame };
      delete state.job.type;
      if (state.view !== 'job') openJob();
      else renderJob();
      loadToday();
      break;
    case 'offer_closed':
      if (state.offer && state.offer.offer_id === frame.offer_id) {
        $('offer-error').textContent = t(`offer.closed_${frame.reason}`);
        $('offer-actions').hidden = true;
        $('offer-reasons').hidden = true;
        setTimeout(() => {
          if (state.offer && state.offer.offer_id === frame.offer_id) hideOffer();
        }, 2500);
      }
      break;
    case 'order_reassigned':
      if (state.next && state.next.order_id === frame.order_id) {
        state.next = null;
        state.nextNote = 'next.reassigned';
        renderNext();
      }
      loadToday();
      break;
    case 'order_cancelled':
      if (state.next && state.next.order_id === frame.order_id) {
        state.next = null;
        renderNext();
      }
      if (state.job && state.job.order_id === frame.order_id) {
        state.job.status = 'cancelled';
        renderJob();
        renderHome();
        $('job-error').textContent = t('job.cancelled');
      }
      loadToday();
      break;
    default:
      // ack, error (a refused fix: nothing the nurse can do about it)
      break;
  }
}

// ------------------------------------------------------------------ offer

let offerTimer = null;

function showOffer(offer) {
  if (state.offer && state.offer.offer_id === offer.offer_id) return;
  state.offer = offer;
  state.offerTotal = Math.max(1, secondsLeft(offer.expires_at));
  $('offer-service').textContent = serviceName(offer.service_code, offer.service);
  $('offer-distance').textContent = distanceText(offer.distance_m);
  $('offer-eta').textContent = offerEta(offer);
  $('offer-place').textContent = offer.place || t('offer.place_unknown');
  const chained = $('offer-chained');
  chained.hidden = !offer.chained;
  chained.textContent = offer.chained ? t('offer.chained', { time: offer.free_at ? timeText(offer.free_at) : '—' }) : '';
  renderFlags($('offer-flags'), offer.flags);
  $('offer-error').textContent = '';
  $('offer-actions').hidden = false;
  $('offer-reasons').hidden = true;
  $('offer').hidden = false;
  tickOffer();
  clearInterval(offerTimer);
  offerTimer = setInterval(tickOffer, 250);
  ring();
}

// A chained offer's travel starts when her visit ends: the arrival as a
// time of day says more than minutes that do not count from now.
function offerEta(offer) {
  if (offer.chained && offer.free_at) {
    const at = Date.parse(offer.free_at) + offer.eta_min * 60000;
    if (!Number.isNaN(at)) return t('offer.arrive_at', { time: timeText(new Date(at).toISOString()) });
  }
  return t('offer.eta_min', { n: offer.eta_min });
}

function rememberFreeAt(value) {
  state.nextFreeAt = value;
  try {
    if (value) localStorage.setItem(NEXT_FREE_AT_KEY, JSON.stringify(value));
    else localStorage.removeItem(NEXT_FREE_AT_KEY);
  } catch (_) {
    // private mode: kept for this page only
  }
}

function tickOffer() {
  const offer = state.offer;
  if (!offer) return;
  const left = secondsLeft(offer.expires_at);
  $('offer-bar').value = left / state.offerTotal;
  $('offer-countdown').textContent = left > 0 ? t('offer.countdown', { s: left }) : t('offer.expired');
  if (left <= 0) {
    $('offer-actions').hidden = true;
    $('offer-reasons').hidden = true;
    clearInterval(offerTimer);
    setTimeout(() => {
      if (state.offer === offer) hideOffer();
    }, 2000);
  }
}

function hideOffer() {
  clearInterval(offerTimer);
  state.offer = null;
  $('offer').hidden = true;
}

async function acceptOffer() {
  const offer = state.offer;
  if (!offer) return;
  $('offer-accept').disabled = true;
  // Before the answer: the socket's `assigned` frame may come first.
  if (offer.chained && offer.free_at) rememberFreeAt({ order_id: offer.order_id, at: offer.free_at });
  try {
    const job = await api.post(`/v1/nurse/offers/${encodeURIComponent(offer.offer_id)}/accept`);
    hideOffer();
    if (job.next) {
      // Her next job: shown under the current one, started when it ends.
      state.next = job;
      state.nextNote = '';
      renderNext();
      loadToday();
      return;
    }
    state.job = job;
    openJob();
    loadToday();
  } catch (err) {
    $('offer-error').textContent = message(err);
  } finally {
    $('offer-accept').disabled = false;
  }
}

async function declineOffer(reasonKey) {
  const offer = state.offer;
  if (!offer) return;
  // The reason is for the coordinators, who read Chinese first.
  const reason = { too_far: '太远了', busy: '正忙，来不及', not_qualified: '不擅长此项服务', other: '其他原因' }[reasonKey] || reasonKey;
  try {
    await api.post(`/v1/nurse/offers/${encodeURIComponent(offer.offer_id)}/decline`, { reason });
    hideOffer();
  } catch (err) {
    $('offer-error').textContent = message(err);
  }
}

// ------------------------------------------------------------------ job

function openJob() {
  if (!state.job) return;
  show('job');
  $('job-error').textContent = '';
  $('record-saved').hidden = true;
  renderJob();
}

function renderJob() {
  renderNext();
  const job = state.job;
  if (!job) return;
  const screen = $('job');
  if (screen.dataset.order !== job.order_id) {
    // Another job on the same screen (the next one became current): nothing
    // typed or saved for the last one carries over.
    const another = Boolean(screen.dataset.order);
    screen.dataset.order = job.order_id;
    $('consent-by').value = '';
    $('record-saved').hidden = true;
    // From the foot of the last visit's record form to the top of this one.
    if (another && state.view === 'job') window.scrollTo(0, 0);
  }
  const svc = service(job.service_code);
  $('job-service').textContent = serviceName(job.service_code);
  const chip = $('job-status');
  chip.dataset.status = job.status;
  chip.textContent = t(`status.${job.status}`);
  $('job-promise').textContent = job.promised_by ? t('job.promise', { time: timeText(job.promised_by) }) : '';

  const steps = $('job-steps');
  steps.replaceChildren();
  const done = job.status === 'cancelled' ? 0 : stepsDone(job.status);
  STEPS.forEach((s, i) => {
    const li = document.createElement('li');
    li.textContent = t(`step.${s.step}`);
    li.className = i < done ? 'done' : i === done ? 'next' : '';
    steps.append(li);
  });

  const p = job.patient;
  const patient = $('job-patient');
  if (p && p.name) {
    const sex = p.sex ? t(`sex.${p.sex}`) : '';
    const years = age(p.birth_year);
    patient.replaceChildren();
    const h = document.createElement('h3');
    h.textContent = t('job.patient');
    const line = document.createElement('p');
    line.className = 'patient';
    line.textContent = t('job.patient_line', { name: p.name, sex, age: years ?? '—' });
    patient.append(h, line);
    patient.hidden = false;
  } else {
    patient.hidden = true;
  }

  const addr = job.address || {};
  $('job-address').textContent = [addr.text, addr.detail].filter(Boolean).join(' ');
  const nav = $('job-nav');
  nav.replaceChildren();
  if (job.location) {
    for (const link of navLinks(job.location, addr.text || '')) {
      const a = document.createElement('a');
      a.className = `button nav nav-${link.key}`;
      a.href = link.url;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      a.textContent = t(`nav.${link.key}`);
      nav.append(a);
    }
  }
  const contact = job.contact || {};
  $('job-contact').textContent = [contact.name, contact.phone].filter(Boolean).join(' · ');
  $('job-call').href = contact.phone ? `tel:${contact.phone}` : '#';
  $('job-notes').textContent = job.notes || '';
  $('job-notes-box').hidden = !job.notes;
  renderFlags($('job-flags'), job.flags);

  const step = job.status === 'cancelled' ? null : nextStep(job.status);
  // Consent and the visit record appear when the catalogue asks for them.
  $('job-consent').hidden = !(step === 'started' && svc && svc.consent);
  if (svc && svc.consent) $('consent-text').textContent = getLang() === 'zh' ? svc.consent.text_zh || '' : svc.consent.text_en || '';
  const template = svc && Array.isArray(svc.record_template) ? svc.record_template : [];
  const form = $('job-record');
  if (step === 'completed' && template.length) {
    if (form.dataset.order !== job.order_id) buildRecordForm(template, job.order_id);
    form.hidden = false;
  } else {
    form.hidden = true;
  }

  const btn = $('job-step');
  if (step) {
    btn.hidden = false;
    btn.textContent = t(`step.do.${step}`);
    btn.dataset.step = step;
  } else {
    btn.hidden = true;
  }
  if (job.status === 'completed') $('job-error').textContent = '';
  const doneNote = $('job-done');
  if (doneNote) doneNote.remove();
  if (job.status === 'completed') {
    const p2 = document.createElement('p');
    p2.id = 'job-done';
    p2.className = 'ok big-note';
    p2.textContent = t('job.done');
    btn.before(p2);
  }
}

function buildRecordForm(template, orderId) {
  const box = $('record-fields');
  box.replaceChildren();
  $('job-record').dataset.order = orderId;
  const zh = getLang() === 'zh';
  for (const f of template) {
    const id = `rec-${f.code}`;
    const label = document.createElement('label');
    label.htmlFor = id;
    label.textContent = `${(zh ? f.label_zh : f.label_en) || f.code}${f.unit ? ` (${f.unit})` : ''}${f.required ? ' *' : ''}`;
    let input;
    if (f.type === 'choice' && Array.isArray(f.choices)) {
      input = document.createElement('select');
      input.append(new Option('—', ''));
      for (const c of f.choices) {
        const value = typeof c === 'object' ? c.code ?? c.value : c;
        const text = typeof c === 'object' ? (zh ? c.label_zh : c.label_en) || value : c;
        input.append(new Option(text, value));
      }
    } else if (f.type === 'bool') {
      input = document.createElement('select');
      input.append(new Option('—', ''), new Option(t('record.yes'), 'true'), new Option(t('record.no'), 'false'));
    } else {
      input = document.createElement('input');
      input.type = f.type === 'number' ? 'number' : 'text';
      if (f.type === 'number') {
        input.inputMode = 'decimal';
        input.step = 'any';
        if (f.min !== undefined && f.min !== null) input.min = f.min;
        if (f.max !== undefined && f.max !== null) input.max = f.max;
      }
    }
    input.id = id;
    input.dataset.code = f.code;
    input.dataset.type = f.type;
    if (f.required) input.required = true;
    box.append(label, input);
  }
}

async function saveRecord(ev) {
  ev.preventDefault();
  const job = state.job;
  if (!job) return;
  const values = {};
  for (const input of $('record-fields').querySelectorAll('[data-code]')) {
    const raw = input.value.trim();
    if (raw === '') continue;
    const type = input.dataset.type;
    values[input.dataset.code] = type === 'number' ? Number(raw) : type === 'bool' ? raw === 'true' : raw;
  }
  const notes = $('record-notes').value.trim();
  $('job-error').textContent = '';
  try {
    await api.post(`/v1/nurse/orders/${encodeURIComponent(job.order_id)}/record`, notes ? { values, notes } : { values });
    $('record-saved').hidden = false;
  } catch (err) {
    $('job-error').textContent = message(err);
  }
}

async function doStep() {
  const job = state.job;
  const step = $('job-step').dataset.step;
  if (!job || !step) return;
  const body = { step };
  const svc = service(job.service_code);
  if (step === 'started' && svc && svc.consent) {
    const who = $('consent-by').value.trim();
    if (!who) {
      $('job-error').textContent = t('job.consent_required');
      return;
    }
    body.consent_by = who;
  }
  // At the door: the server checks the distance to the address.
  if (step === 'arrived' && latestFix && Date.now() - Date.parse(latestFix.ts) < 120000) {
    body.location = { lat: latestFix.lat, lng: latestFix.lng, accuracy_m: latestFix.accuracy_m };
  }
  $('job-error').textContent = '';
  $('job-step').disabled = true;
  try {
    const res = await api.post(`/v1/nurse/orders/${encodeURIComponent(job.order_id)}/progress`, body);
    // Completed with a next job: the socket's `assigned` frame may already
    // have made that one current; the finished visit must not take it back.
    if (!state.job || state.job.order_id === job.order_id) state.job = { ...job, ...res };
    // A next job taken back during this visit: the note has had its time.
    if (res.status === 'completed') state.nextNote = '';
    if (res.status === 'completed' && state.next && state.job.order_id === job.order_id) {
      // The next job became current with this completion (one transaction):
      // show it now rather than wait for the socket's frame.
      try {
        await loadJobs();
      } catch (_) {
        // the socket's `assigned` frame brings it
      }
    }
    renderJob();
    loadToday();
  } catch (err) {
    $('job-error').textContent = message(err);
  } finally {
    $('job-step').disabled = false;
  }
}

// ------------------------------------------------------------------ start

function relabel() {
  applyI18n();
  safety.render();
  document.title = t('app.title');
  renderShift();
  renderStatus();
  if (state.view === 'home') {
    renderHome();
    renderToday();
  }
  if (state.view === 'job') renderJob();
  if (suggestion) suggestion.render();
  if (state.offer) {
    $('offer-service').textContent = serviceName(state.offer.service_code, state.offer.service);
    $('offer-eta').textContent = offerEta(state.offer);
    $('offer-place').textContent = state.offer.place || t('offer.place_unknown');
  }
}

async function main() {
  const lang = $('lang');
  lang.value = getLang();
  setLang(getLang());
  lang.addEventListener('change', () => {
    setLang(lang.value);
    relabel();
  });
  applyI18n();
  $('phone-form').addEventListener('submit', sendCode);
  $('code-form').addEventListener('submit', verifyCode);
  $('code-back').addEventListener('click', () => {
    $('phone-form').hidden = false;
    $('code-form').hidden = true;
    $('signin-info').textContent = '';
  });
  $('dev-form').addEventListener('submit', devSignIn);
  $('shift').addEventListener('click', toggleShift);
  suggestion = new Suggestion();
  $('signout').addEventListener('click', () => signOut(''));
  $('current-job').addEventListener('click', openJob);
  $('job-back').addEventListener('click', () => {
    show('home');
    renderHome();
    loadToday();
  });
  $('job-step').addEventListener('click', doStep);
  $('job-record').addEventListener('submit', saveRecord);
  $('offer-accept').addEventListener('click', acceptOffer);
  $('offer-decline').addEventListener('click', () => {
    $('offer-actions').hidden = true;
    $('offer-reasons').hidden = false;
  });
  $('offer-reasons-back').addEventListener('click', () => {
    $('offer-actions').hidden = false;
    $('offer-reasons').hidden = true;
  });
  for (const b of document.querySelectorAll('.reason')) {
    b.addEventListener('click', () => declineOffer(b.dataset.reason));
  }

  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('./sw.js').catch(() => {});
  }

  try {
    const res = await fetch('./config.json', { cache: 'no-store' });
    if (res.ok) state.config = { ...state.config, ...(await res.json()) };
  } catch (_) {
    // offline start: defaults
  }
  socket.maxBatch = Math.max(1, state.config.max_fixes_per_batch || 100);
  state.org = new URLSearchParams(location.search).get('org') || state.config.org;
  $('dev-signin').hidden = !state.config.dev_login;

  let saved = null;
  try {
    state.nextFreeAt = JSON.parse(localStorage.getItem(NEXT_FREE_AT_KEY) || 'null');
  } catch (_) {
    state.nextFreeAt = null;
  }
  try {
    saved = localStorage.getItem(TOKEN_KEY);
  } catch (_) {
    saved = null;
  }
  const c = saved && claims(saved);
  if (c && c.role === 'nurse' && c.exp * 1000 > Date.now()) {
    await signIn(saved);
    if (!state.token) show('signin');
  } else {
    show('signin');
  }
}

main();
