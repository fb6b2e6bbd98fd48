// A small offline map for a phone: the service area outline, a light grid,
// the home pin and the nurse's dot, drawn in SVG around a centre point at a
// fixed scale (no tiles, no network). Tapping the map can pick a point.
//
// Positions are projected flat around the centre (metres east and north),
// which is exact enough for the few kilometres a visit spans.

const NS = 'http://www.w3.org/2000/svg';
const LAT_M = 110574;

function node(name, attrs) {
  const n = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  return n;
}

export class MiniMap {
  /**
   * @param {SVGSVGElement} svg
   * @param {{areas?: number[][][], center?: {lat:number,lng:number}, spanM?: number, onPick?: (p:{lat:number,lng:number}) => void}} opts
   */
  constructor(svg, opts = {}) {
    this.svg = svg;
    this.areas = opts.areas || [];
    this.spanM = opts.spanM || 4000;
    this.center = opts.center || areaCentre(this.areas) || { lat: 29.3896, lng: 106.2854 };
    this.pin = null;
    this.nurse = null;
    this.onPick = opts.onPick || null;
    this.svg.setAttribute('viewBox', '0 0 360 240');
    this.svg.setAttribute('role', 'img');
    if (this.onPick) {
      this.svg.addEventListener('click', (e) => this.picked(e));
    }
    this.draw();
  }

  setPin(p) { this.pin = p; if (p) this.center = p; this.draw(); }

  setNurse(p) {
    this.nurse = p;
    // Keep both in view: centre between them, widen the span if needed.
    if (p && this.pin) {
      this.center = { lat: (p.lat + this.pin.lat) / 2, lng: (p.lng + this.pin.lng) / 2 };
      const [dx, dy] = this.metres(p, this.pin);
      this.spanM = Math.max(2000, Math.abs(dx) * 1.4, Math.abs(dy) * 2.1);
    }
    this.draw();
  }

  metres(a, b) {
    const lngM = 111320 * Math.cos((b.lat * Math.PI) / 180);
    return [(a.lng - b.lng) * lngM, (a.lat - b.lat) * LAT_M];
  }

  toXY(p) {
    const [dx, dy] = this.metres(p, this.center);
    const k = 360 / this.spanM;
    return [180 + dx * k, 120 - dy * k];
  }

  fromXY(x, y) {
    const k = 360 / this.spanM;
    const lngM = 111320 * Math.cos((this.center.lat * Math.PI) / 180);
    return { lat: this.center.lat + (120 - y) / k / LAT_M, lng: this.center.lng + (x - 180) / k / lngM };
  }

  picked(e) {
    const box = this.svg.getBoundingClientRect();
    if (!box.width) return;
    const x = ((e.clientX - box.left) / box.width) * 360;
    const y = ((e.clientY - box.top) / box.height) * 240;
    const p = this.fromXY(x, y);
    this.pin = p;
    this.draw();
    this.onPick(p);
  }

  draw() {
    const svg = this.svg;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    // A grid line every 500 m.
    const step = (500 * 360) / this.spanM;
    for (let x = (180 % step); x < 360; x += step) svg.appendChild(node('line', { class: 'grid', x1: x, y1: 0, x2: x, y2: 240 }));
    for (let y = (120 % step); y < 240; y += step) svg.appendChild(node('line', { class: 'grid', x1: 0, y1: y, x2: 360, y2: y }));
    for (const ring of this.areas) {
      const points = ring.map(([lng, lat]) => this.toXY({ lat, lng }).map((v) => v.toFixed(1)).join(',')).join(' ');
      svg.appendChild(node('polygon', { class: 'area', points }));
    }
    if (this.pin && this.nurse) {
      const [x1, y1] = this.toXY(this.nurse);
      const [x2, y2] = this.toXY(this.pin);
      svg.appendChild(node('line', { class: 'route', x1, y1, x2, y2 }));
    }
    if (this.pin) {
      const [x, y] = this.toXY(this.pin);
      const g = node('g', { 'data-role': 'pin', 'data-lat': this.pin.lat.toFixed(6), 'data-lng': this.pin.lng.toFixed(6) });
      g.appendChild(node('path', { class: 'pin', d: `M${x} ${y} l-11 -20 a12 12 0 1 1 22 0 z` }));
      g.appendChild(node('circle', { cx: x, cy: y - 24, r: 4, fill: '#fff' }));
      svg.appendChild(g);
    }
    if (this.nurse) {
      const [x, y] = this.toXY(this.nurse);
      svg.appendChild(node('circle', {
        class: 'nurse', cx: x.toFixed(1), cy: y.toFixed(1), r: 11, 'data-role': 'nurse',
        'data-lat': this.nurse.lat.toFixed(6), 'data-lng': this.nurse.lng.toFixed(6),
      }));
    }
    const km = this.spanM >= 2000 ? `${(this.spanM / 1000).toFixed(1)} km` : `${Math.round(this.spanM)} m`;
    const label = node('text', { class: 'scale', x: 8, y: 232 });
    label.textContent = `↔ ${km}`;
    svg.appendChild(label);
  }
}

/** The middle of the areas' bounding box. */
export function areaCentre(areas) {
  const pts = areas.flat();
  if (!pts.length) return null;
  const lngs = pts.map((p) => p[0]);
  const lats = pts.map((p) => p[1]);
  return { lat: (Math.min(...lats) + Math.max(...lats)) / 2, lng: (Math.min(...lngs) + Math.max(...lngs)) / 2 };
}
