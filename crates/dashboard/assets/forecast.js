// The "需求预测 Forecast" layer of the map: the next hour's expected orders
// per H3 cell (learnt from the organisation's own order history) and the
// waiting spots suggested to idle nurses, from GET /v1/dispatch/forecast.
// Off by default; while on, it is read again every minute.

const REFRESH_MS = 60000;

export class ForecastLayer {
  /**
   * @param {{get: (path: string) => Promise<any>}} api
   * @param {{onChange: () => void, toast?: (text: string) => void, label: (key: string, vars?: object) => string}} options
   */
  constructor(api, options) {
    this.api = api;
    this.onChange = options.onChange;
    this.toast = options.toast || (() => {});
    this.label = options.label;
    this.visible = false;
    this.data = null;
    this.timer = null;
  }

  /** Turns the layer on or off; returns whether it is on. */
  toggle(on = !this.visible) {
    this.visible = on;
    clearInterval(this.timer);
    this.timer = null;
    if (on) {
      this.refresh();
      this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    }
    this.onChange();
    return on;
  }

  async refresh() {
    try {
      this.data = await this.api.get('/v1/dispatch/forecast');
    } catch (e) {
      this.toast(this.label('forecast.failed', { message: e.message || String(e) }));
      return;
    }
    if (this.visible) this.onChange();
  }

  /** What the map draws: null while the layer is off. */
  layer() {
    return this.visible && this.data ? this.data : null;
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.visible = false;
    this.data = null;
  }
}
