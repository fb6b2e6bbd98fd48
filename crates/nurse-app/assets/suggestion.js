// The waiting-spot suggestion (demand forecast and repositioning): when she
// is idle on shift, the dispatcher may suggest a place from which more of
// the next hour's expected orders are within reach. A card on the home
// screen shows it with its distance and map links; "忽略 Ignore" hides it.
// Nothing is forced: ignoring it changes nothing else. The card goes away by
// itself when she gets an offer or a job (`suggestion_cleared`, or the
// offer/assigned frame), at its `until`, or when she goes off shift.

import { navLinks } from './maps.js';
import { distanceText } from './state.js';
import { t } from './i18n.js';

const $ = (id) => document.getElementById(id);

export class Suggestion {
  constructor() {
    this.current = null;
    // Spots she dismissed (by cell, until they run out): not shown again.
    this.ignored = new Map();
    this.timer = null;
    const ignore = $('suggestion-ignore');
    if (ignore) ignore.addEventListener('click', () => this.ignore());
  }

  /** Every socket frame passes here. */
  onFrame(frame) {
    switch (frame.type) {
      case 'suggestion':
        this.show(frame);
        break;
      case 'suggestion_cleared':
      case 'offer':
      case 'assigned':
        this.hide();
        break;
      default:
        break;
    }
  }

  show(s) {
    const until = Date.parse(s.until);
    if (!Number.isFinite(until) || until <= Date.now()) return;
    const ignoredUntil = this.ignored.get(s.cell);
    if (ignoredUntil && ignoredUntil > Date.now()) return;
    this.current = s;
    this.render();
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.hide(), Math.min(until - Date.now(), 2 ** 31 - 1));
  }

  render() {
    const s = this.current;
    const card = $('suggestion');
    if (!card) return;
    if (!s) {
      card.hidden = true;
      return;
    }
    $('suggestion-distance').textContent = distanceText(s.distance_m);
    $('suggestion-orders').textContent = t('suggestion.orders', {
      n: (Math.round(s.expected_orders * 10) / 10).toString(),
    });
    const until = new Date(s.until);
    $('suggestion-until').textContent = t('suggestion.until', {
      time: until.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }),
    });
    const nav = $('suggestion-nav');
    nav.replaceChildren();
    for (const link of navLinks(s.location, t('suggestion.title'))) {
      const a = document.createElement('a');
      a.className = `button nav nav-${link.key}`;
      a.href = link.url;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      a.textContent = t(`nav.${link.key}`);
      nav.append(a);
    }
    card.hidden = false;
  }

  /** She does not want to go: hide this spot until it runs out. */
  ignore() {
    const s = this.current;
    if (s) this.ignored.set(s.cell, Date.parse(s.until));
    this.hide();
  }

  hide() {
    clearTimeout(this.timer);
    this.current = null;
    const card = $('suggestion');
    if (card) card.hidden = true;
  }
}
