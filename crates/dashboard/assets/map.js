// The live map, drawn in SVG by the page itself so it works offline: the
// service areas, the H3 cells (outlines from the server) shaded by supply
// against demand, nurses coloured by state, open orders with their
// countdown, and a line from the assigned nurse to the order. Base map
// tiles are drawn underneath only when a tile URL is configured.
//
// Projection: equirectangular around the areas' centre, in metres (exact
// enough for a district), then scaled to screen pixels; markers and labels
// are placed in pixels so they keep their size at every zoom.

import { clock, orderRisk } from './state.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
const M_PER_DEG_LAT = 110574;
const M_PER_DEG_LNG = 111320;
const MAX_TILES = 150;
const CLICK_SLOP_PX = 5;

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

const r1 = (n) => Math.round(n * 10) / 10;

export class MapView {
  /**
   * @param {SVGSVGElement} svg
   * @param {{tileUrl: string, onSelectOrder: (id: string) => void, label: (key: string, vars?: object) => string}} options
   */
  constructor(svg, options) {
    this.svg = svg;
    this.tileUrl = options.tileUrl || '';
    this.onSelectOrder = options.onSelectOrder;
    this.label = options.label;
    this.data = { areas: [], cells: [], nurses: [], orders: [], selected: null, alarms: [], forecast: null };
    this.origin = null;
    this.view = null; // {cx, cy} metres, scale px per metre
    // Until the coordinator pans or zooms, the view follows the areas (and
    // the map's size) by itself.
    this.auto = true;
    this.fittedOn = null;
    this.pending = false;
    this.drag = null;
    this.listen();
    if (typeof ResizeObserver !== 'undefined') {
      new ResizeObserver(() => this.schedule()).observe(svg);
    }
  }

  /** Replaces what is drawn (any subset of areas, cells, nurses, orders, selected). */
  set(data) {
    Object.assign(this.data, data);
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  size() {
    const box = this.svg.getBoundingClientRect();
    return { w: Math.max(box.width, 1), h: Math.max(box.height, 1) };
  }

  /** Every [lat, lng] the areas span (or the nurses and orders when there is no area). */
  extentPoints() {
    const pts = [];
    for (const a of this.data.areas) {
      for (const [lng, lat] of a.polygon.coordinates[0] || []) pts.push([lat, lng]);
    }
    if (!pts.length) {
      for (const n of this.data.nurses) if (n.position) pts.push([n.position.lat, n.position.lng]);
      for (const o of this.data.orders) pts.push([o.location.lat, o.location.lng]);
    }
    if (!pts.length) pts.push([29.395, 106.315]);
    return pts;
  }

  /** Centres and scales the map on the service areas (and follows them from now on). */
  fit() {
    this.auto = true;
    this.fitNow();
  }

  fitNow() {
    const pts = this.extentPoints();
    const lats = pts.map((p) => p[0]);
    const lngs = pts.map((p) => p[1]);
    const lat0 = (Math.min(...lats) + Math.max(...lats)) / 2;
    const lng0 = (Math.min(...lngs) + Math.max(...lngs)) / 2;
    this.origin = { lat0, lng0, kx: M_PER_DEG_LNG * Math.cos((lat0 * Math.PI) / 180) };
    const xs = pts.map((p) => this.project(p[0], p[1]));
    const spanX = Math.max(...xs.map((p) => p.x)) - Math.min(...xs.map((p) => p.x)) || 2000;
    const spanY = Math.max(...xs.map((p) => p.y)) - Math.min(...xs.map((p) => p.y)) || 2000;
    const { w, h } = this.size();
    this.view = { cx: 0, cy: 0, scale: Math.min(w / (spanX * 1.15), h / (spanY * 1.15)) };
    this.fittedOn = this.fitKey();
    this.schedule();
  }

  /** What the automatic view depends on: the map's size and the areas. */
  fitKey() {
    const { w, h } = this.size();
    return `${Math.round(w)}x${Math.round(h)}:${this.data.areas.map((a) => a.id).join(',')}`;
  }

  project(lat, lng) {
    const o = this.origin;
    return { x: (lng - o.lng0) * o.kx, y: -(lat - o.lat0) * M_PER_DEG_LAT };
  }

  unproject(x, y) {
    const o = this.origin;
    return { lat: o.lat0 - y / M_PER_DEG_LAT, lng: o.lng0 + x / o.kx };
  }

  screen(lat, lng) {
    const p = this.project(lat, lng);
    const { w, h } = this.size();
    return { x: r1((p.x - this.view.cx) * this.view.scale + w / 2), y: r1((p.y - this.view.cy) * this.view.scale + h / 2) };
  }

  zoom(factor, at) {
    if (!this.view) return;
    const { w, h } = this.size();
    const px = at ? at.x : w / 2;
    const py = at ? at.y : h / 2;
    // Keep the point under the cursor where it is.
    const mx = (px - w / 2) / this.view.scale + this.view.cx;
    const my = (py - h / 2) / this.view.scale + this.view.cy;
    this.auto = false;
    this.view.scale = Math.min(Math.max(this.view.scale * factor, 0.0005), 2);
    this.view.cx = mx - (px - w / 2) / this.view.scale;
    this.view.cy = my - (py - h / 2) / this.view.scale;
    this.schedule();
  }

  listen() {
    const svg = this.svg;
    svg.addEventListener('wheel', (e) => {
      e.preventDefault();
      const box = svg.getBoundingClientRect();
      this.zoom(e.deltaY < 0 ? 1.25 : 0.8, { x: e.clientX - box.left, y: e.clientY - box.top });
    }, { passive: false });
    svg.addEventListener('pointerdown', (e) => {
      if (!this.view) return;
      this.drag = { x: e.clientX, y: e.clientY, cx: this.view.cx, cy: this.view.cy, moved: false };
    });
    svg.addEventListener('pointermove', (e) => {
      const d = this.drag;
      if (!d) return;
      const dx = e.clientX - d.x;
      const dy = e.clientY - d.y;
      if (!d.moved && Math.hypot(dx, dy) < CLICK_SLOP_PX) return;
      d.moved = true;
      this.auto = false;
      this.view.cx = d.cx - dx / this.view.scale;
      this.view.cy = d.cy - dy / this.view.scale;
      this.schedule();
    });
    const end = () => {
      const moved = this.drag && this.drag.moved;
      this.drag = null;
      return moved;
    };
    svg.addEventListener('pointerup', (e) => {
      if (end()) return;
      const target = e.target.closest('[data-order-id]');
      if (target) this.onSelectOrder(target.dataset.orderId);
    });
    svg.addEventListener('pointerleave', end);
  }

  render() {
    const { w, h } = this.size();
    if (w < 2 || h < 2) return; // hidden: nothing to draw yet
    if (!this.origin || (this.auto && this.fittedOn !== this.fitKey())) this.fitNow();
    this.svg.setAttribute('viewBox', `0 0 ${r1(w)} ${r1(h)}`);
    const now = Date.now();
    const frag = document.createDocumentFragment();
    if (this.tileUrl) frag.append(this.tiles(w, h));
    frag.append(this.cells(), this.forecastCells(), this.areas(), this.lines(), this.orders(now), this.nurses(), this.suggestions(), this.alarmMarkers());
    this.svg.replaceChildren(frag);
  }

  tiles(w, h) {
    const g = el('g', { class: 'tiles' });
    const mpp = 1 / this.view.scale;
    const z = Math.min(19, Math.max(1, Math.round(Math.log2((156543.03392 * Math.cos((this.origin.lat0 * Math.PI) / 180)) / mpp))));
    const n = 2 ** z;
    const nw = this.unproject((0 - w / 2) / this.view.scale + this.view.cx, (0 - h / 2) / this.view.scale + this.view.cy);
    const se = this.unproject((w - w / 2) / this.view.scale + this.view.cx, (h - h / 2) / this.view.scale + this.view.cy);
    const tx = (lng) => Math.floor(((lng + 180) / 360) * n);
    const ty = (lat) => {
      const r = (lat * Math.PI) / 180;
      return Math.floor(((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2) * n);
    };
    const lngOf = (x) => (x / n) * 360 - 180;
    const latOf = (y) => (Math.atan(Math.sinh(Math.PI * (1 - (2 * y) / n))) * 180) / Math.PI;
    const [x0, x1, y0, y1] = [tx(nw.lng), tx(se.lng), ty(nw.lat), ty(se.lat)];
    if ((x1 - x0 + 1) * (y1 - y0 + 1) > MAX_TILES) return g;
    for (let x = x0; x <= x1; x++) {
      for (let y = y0; y <= y1; y++) {
        if (y < 0 || y >= n) continue;
        const a = this.screen(latOf(y), lngOf(x));
        const b = this.screen(latOf(y + 1), lngOf(x + 1));
        const href = this.tileUrl
          .replace('{z}', z)
          .replace('{x}', ((x % n) + n) % n)
          .replace('{y}', y)
          .replace('{s}', 'abc'[Math.abs(x + y) % 3]);
        g.append(el('image', {
          href, x: a.x, y: a.y, width: r1(b.x - a.x + 0.5), height: r1(b.y - a.y + 0.5), preserveAspectRatio: 'none',
        }));
      }
    }
    return g;
  }

  cells() {
    const g = el('g', { class: 'cells' });
    for (const c of this.data.cells) {
      const pts = c.boundary.map((p) => this.screen(p.lat, p.lng));
      let cls = 'cell';
      if (c.waiting_orders > c.free_nurses) cls += ' cell-short';
      else if (c.free_nurses > 0) cls += ' cell-surplus';
      if (!c.in_area) cls += ' cell-outside';
      const poly = el('polygon', { class: cls, points: pts.map((p) => `${p.x},${p.y}`).join(' '), 'data-cell': c.cell });
      poly.append(el('title', {}, `${c.cell}\n${this.label('nurse.free')}: ${c.free_nurses} · ${this.label('status.pending')}: ${c.waiting_orders} / ${c.open_orders}`));
      g.append(poly);
      if (c.free_nurses || c.open_orders) {
        const at = this.screen(c.center.lat, c.center.lng);
        g.append(el('text', { class: 'cell-label', x: at.x, y: at.y + 4 }, `${c.free_nurses}/${c.waiting_orders}`));
      }
    }
    return g;
  }

  /** The forecast layer: cells shaded by the next hour's expected orders. */
  forecastCells() {
    const g = el('g', { class: 'forecast' });
    const f = this.data.forecast;
    if (!f) return g;
    const max = Math.max(0.001, ...f.cells.map((c) => c.expected_orders));
    for (const c of f.cells) {
      const pts = c.boundary.map((p) => this.screen(p.lat, p.lng));
      const share = Math.min(1, c.expected_orders / max);
      const poly = el('polygon', {
        class: 'forecast-cell',
        points: pts.map((p) => `${p.x},${p.y}`).join(' '),
        'fill-opacity': (0.12 + 0.5 * share).toFixed(2),
        'data-forecast-cell': c.cell,
      });
      poly.append(el('title', {}, `${c.cell}\n${this.label('forecast.cell', { n: c.expected_orders.toFixed(1) })}`));
      g.append(poly);
      const at = this.screen(c.center.lat, c.center.lng);
      g.append(el('text', { class: 'forecast-label', x: at.x, y: at.y + 26 }, c.expected_orders.toFixed(1)));
    }
    return g;
  }

  /** The forecast layer: an arrow from each suggested nurse to her waiting spot. */
  suggestions() {
    const g = el('g', { class: 'suggestions' });
    const f = this.data.forecast;
    if (!f) return g;
    for (const s of f.suggestions) {
      const a = this.screen(s.from.lat, s.from.lng);
      const b = this.screen(s.location.lat, s.location.lng);
      const len = Math.hypot(b.x - a.x, b.y - a.y) || 1;
      const ux = (b.x - a.x) / len;
      const uy = (b.y - a.y) / len;
      // Arrow head at the spot: two short strokes back from the tip.
      const head = (side) => `${r1(b.x - 10 * ux + side * 6 * uy)},${r1(b.y - 10 * uy - side * 6 * ux)}`;
      const arrow = el('g', { class: 'suggestion', 'data-suggestion-nurse': s.nurse_id });
      arrow.append(el('line', { class: 'suggest-line', x1: a.x, y1: a.y, x2: b.x, y2: b.y }));
      arrow.append(el('polygon', { class: 'suggest-head', points: `${b.x},${b.y} ${head(1)} ${head(-1)}` }));
      arrow.append(el('circle', { class: 'suggest-spot', cx: b.x, cy: b.y, r: 9 }));
      arrow.append(el('title', {}, this.label('forecast.suggestion', {
        name: s.nurse_name || s.nurse_id.slice(0, 8),
        n: s.expected_orders.toFixed(1),
        km: (s.distance_m / 1000).toFixed(1),
      })));
      g.append(arrow);
    }
    return g;
  }

  areas() {
    const g = el('g', { class: 'areas' });
    for (const a of this.data.areas) {
      const d = a.polygon.coordinates
        .map((ring) => 'M' + ring.map(([lng, lat]) => {
          const p = this.screen(lat, lng);
          return `${p.x},${p.y}`;
        }).join('L') + 'Z')
        .join(' ');
      const path = el('path', { class: 'area', d, 'fill-rule': 'evenodd' });
      path.append(el('title', {}, a.name));
      g.append(path);
    }
    return g;
  }

  nurseById() {
    return new Map(this.data.nurses.map((n) => [n.id, n]));
  }

  lines() {
    const g = el('g', { class: 'lines' });
    const nurses = this.nurseById();
    for (const o of this.data.orders) {
      const to = this.screen(o.location.lat, o.location.lng);
      if (o.nurse_id && (o.status === 'assigned' || o.status === 'en_route')) {
        const n = nurses.get(o.nurse_id);
        if (n && n.position) {
          const from = this.screen(n.position.lat, n.position.lng);
          g.append(el('line', { class: 'job-line', x1: from.x, y1: from.y, x2: to.x, y2: to.y, 'data-line': `${n.id}:${o.id}` }));
        }
      }
      for (const offer of o.offers || []) {
        if (offer.status !== 'open') continue;
        const n = nurses.get(offer.nurse_id);
        if (n && n.position) {
          const from = this.screen(n.position.lat, n.position.lng);
          g.append(el('line', { class: 'offer-line', x1: from.x, y1: from.y, x2: to.x, y2: to.y }));
        }
      }
    }
    return g;
  }

  orders(now) {
    const g = el('g', { class: 'orders' });
    for (const o of this.data.orders) {
      const at = this.screen(o.location.lat, o.location.lng);
      const risk = orderRisk(o, now);
      const selected = this.data.selected === o.id ? ' selected' : '';
      const m = el('g', {
        class: `order order-${risk.level} status-${o.status}${selected}`,
        transform: `translate(${at.x},${at.y})`,
        'data-order-id': o.id,
      });
      m.append(el('path', { class: 'order-pin', d: 'M0,0 L-7,-11 A8.5,8.5 0 1 1 7,-11 Z' }));
      m.append(el('circle', { class: 'order-dot', cx: 0, cy: -14, r: 3 }));
      if (risk.level !== 'done') {
        const text = (risk.left < 0 ? '-' : '') + clock(risk.left);
        m.append(el('text', { class: 'countdown', x: 0, y: -27 }, text));
      }
      m.append(el('title', {}, `${o.address ? o.address.text : ''}\n${this.label(`status.${o.status}`)}`));
      g.append(m);
    }
    return g;
  }

  /** Nurses' open alarms: a pulsing red ring with the alarm's kind. */
  alarmMarkers() {
    const g = el('g', { class: 'alarms' });
    for (const a of this.data.alarms || []) {
      const at = this.screen(a.lat, a.lng);
      const m = el('g', { class: `alarm-marker alarm-${a.state}`, transform: `translate(${at.x},${at.y})`, 'data-alarm-id': a.id });
      m.append(el('circle', { class: 'alarm-pulse', cx: 0, cy: 0, r: 18 }));
      m.append(el('circle', { class: 'alarm-core', cx: 0, cy: 0, r: 9 }));
      m.append(el('text', { class: 'alarm-label', x: 0, y: -24 }, a.label));
      g.append(m);
    }
    return g;
  }

  /** Moves the view to a point (keeps the zoom). */
  centerOn(lat, lng) {
    if (!this.origin || !this.view) return;
    const p = this.project(lat, lng);
    this.view.cx = p.x;
    this.view.cy = p.y;
    this.auto = false;
    this.schedule();
  }

  nurses() {
    const g = el('g', { class: 'nurses' });
    for (const n of this.data.nurses) {
      if (!n.position || n.state === 'off_shift' || n.state === 'inactive') continue;
      const at = this.screen(n.position.lat, n.position.lng);
      const c = el('circle', {
        class: `nurse nurse-${n.state}`, cx: at.x, cy: at.y, r: 6.5, 'data-nurse-id': n.id, 'data-state': n.state,
      });
      c.append(el('title', {}, `${n.name} · ${this.label(`nurse.${n.state}`)}`));
      g.append(c);
    }
    return g;
  }
}
