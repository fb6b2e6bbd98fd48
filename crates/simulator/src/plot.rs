//! The hour-of-day chart both SVG figures are drawn with: order volume as
//! grey bars on a right-hand axis behind, lines or steps on the left axis,
//! an optional dashed target line, hours to flag, a legend below. Hand
//! written SVG (no dependency), Chinese first with English, in a font stack
//! that has the CJK glyphs.

use std::fmt::Write as _;

/// Fonts with CJK glyphs first, then generic.
pub(crate) const FONT_STACK: &str = "'Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', \
     'PingFang SC', 'Microsoft YaHei', 'WenQuanYi Micro Hei', sans-serif";

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A point at the middle of each hour, joined; gaps where there is no value.
    Line,
    /// Flat across each hour, steps between hours.
    Step,
}

/// One series on the left axis.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub label: String,
    pub colour: &'static str,
    pub dashed: bool,
    pub shape: Shape,
    pub values: [Option<f64>; 24],
}

/// A chart over the 24 hours of the day.
#[derive(Debug, Clone)]
pub(crate) struct HourChart {
    pub title: String,
    pub subtitle: String,
    /// Left axis label and range (0..=y_max); tick labels get `y_unit`.
    pub y_label: String,
    pub y_max: f64,
    pub y_step: f64,
    /// Tick values are multiplied by this for their labels (100 for a share shown in %).
    pub y_scale: f64,
    pub y_unit: &'static str,
    /// Orders per hour (mean a day), the grey bars on the right axis.
    pub bars: [f64; 24],
    pub bar_label: String,
    pub series: Vec<Series>,
    /// A dashed horizontal line on the left axis, with its label.
    pub target: Option<(f64, String)>,
    /// Hours to flag with a red band at the top, and what the band means.
    pub flagged: Vec<usize>,
    pub flag_label: String,
}

const W: f64 = 960.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 80.0;
const TOP: f64 = 78.0;
const PLOT_H: f64 = 360.0;

/// A step of 1, 2 or 5 × 10ⁿ giving at most `ticks` intervals up to `max`.
pub(crate) fn nice_step(max: f64, ticks: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / ticks;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// Rounds `max` up to a whole number of `step`s (at least one).
pub(crate) fn ceil_to(max: f64, step: f64) -> f64 {
    ((max / step).ceil().max(1.0)) * step
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

impl HourChart {
    /// Legend entries: the series, the bars, the target, the flagged hours.
    fn legend_len(&self) -> usize {
        self.series.len()
            + 1
            + usize::from(self.target.is_some())
            + usize::from(!self.flagged.is_empty())
    }

    /// Tall enough for the legend's rows (two entries a row).
    fn height(&self) -> f64 {
        TOP + PLOT_H + 72.0 + 24.0 * self.legend_len().div_ceil(2) as f64
    }

    pub fn svg(&self) -> String {
        let pw = W - LEFT - RIGHT;
        let ph = PLOT_H;
        let slot = pw / 24.0;
        let x0 = |hour: f64| LEFT + slot * hour;
        let y = |v: f64| TOP + ph * (1.0 - (v / self.y_max).clamp(0.0, 1.0));
        let bar_step = nice_step(self.bars.iter().copied().fold(0.0, f64::max), 5.0);
        let bar_max = ceil_to(self.bars.iter().copied().fold(0.0, f64::max), bar_step);
        let yb = |v: f64| TOP + ph * (1.0 - (v / bar_max).clamp(0.0, 1.0));
        let mut s = String::new();
        let _ = writeln!(
            s,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="{}" font-size="13" fill="#222">"##,
            FONT_STACK,
            h = self.height()
        );
        let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="white"/>"##);
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="28" font-size="18" font-weight="bold">{}</text>"##,
            xml(&self.title)
        );
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="50" font-size="13" fill="#555">{}</text>"##,
            xml(&self.subtitle)
        );
        // Order volume behind everything.
        let _ = writeln!(s, r##"<g class="orders" fill="#d9d9d9">"##);
        for (h, v) in self.bars.iter().enumerate() {
            if *v <= 0.0 {
                continue;
            }
            let top = yb(*v);
            let _ = writeln!(
                s,
                r##"<rect class="bar" x="{:.1}" y="{top:.1}" width="{:.1}" height="{:.1}"><title>{h:02}:00 {:.1}</title></rect>"##,
                x0(h as f64) + slot * 0.15,
                slot * 0.7,
                TOP + ph - top,
                v
            );
        }
        s.push_str("</g>\n");
        // Left axis grid and ticks.
        let mut v = 0.0;
        while v <= self.y_max + 1e-9 {
            let yy = y(v);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#000" stroke-opacity="0.12"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}{}</text>"##,
                LEFT + pw,
                LEFT - 8.0,
                yy + 4.0,
                tick(v * self.y_scale),
                self.y_unit
            );
            v += self.y_step;
        }
        // Right axis ticks (orders).
        let mut b = 0.0;
        while b <= bar_max + 1e-9 {
            let yy = yb(b);
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" fill="#888">{}</text>"##,
                LEFT + pw + 8.0,
                yy + 4.0,
                tick(b)
            );
            b += bar_step;
        }
        // Frame and hour labels.
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw:.1}" height="{ph:.1}" fill="none" stroke="#999"/>"##
        );
        for h in 0..24 {
            let cx = x0(h as f64 + 0.5);
            let _ = writeln!(
                s,
                r##"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" font-size="12">{h:02}</text>"##,
                TOP + ph + 18.0
            );
        }
        // Hours flagged: a red band along the top of the plot.
        if !self.flagged.is_empty() {
            let _ = writeln!(s, r##"<g class="flagged" fill="#d62728">"##);
            for &h in &self.flagged {
                let _ = writeln!(
                    s,
                    r##"<rect x="{:.1}" y="{TOP}" width="{slot:.1}" height="8"><title>{h:02}:00 {}</title></rect>"##,
                    x0(h as f64),
                    xml(&self.flag_label)
                );
            }
            s.push_str("</g>\n");
        }
        // Axis labels.
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="14">时段 hour of day</text>"##,
            LEFT + pw / 2.0,
            TOP + ph + 42.0
        );
        let mid = TOP + ph / 2.0;
        let _ = writeln!(
            s,
            r##"<text transform="translate(22 {mid:.1}) rotate(-90)" text-anchor="middle" font-size="14">{}</text>"##,
            xml(&self.y_label)
        );
        let _ = writeln!(
            s,
            r##"<text transform="translate({:.1} {mid:.1}) rotate(90)" text-anchor="middle" font-size="14" fill="#777">{}</text>"##,
            W - 22.0,
            xml(&self.bar_label)
        );
        // The target line.
        if let Some((t, label)) = &self.target {
            let ty = y(*t);
            let _ = writeln!(
                s,
                r##"<line class="target" x1="{LEFT}" x2="{:.1}" y1="{ty:.1}" y2="{ty:.1}" stroke="#333" stroke-width="1.5" stroke-dasharray="8 5"/><text x="{:.1}" y="{:.1}" font-size="12" fill="#333" stroke="white" stroke-width="4" paint-order="stroke">{}</text>"##,
                LEFT + pw,
                LEFT + 6.0,
                ty - 6.0,
                xml(label)
            );
        }
        // The series.
        for series in &self.series {
            let dash = if series.dashed {
                r##" stroke-dasharray="6 4""##
            } else {
                ""
            };
            for run in &runs(&series.values) {
                let mut pts = Vec::new();
                for &(h, v) in run {
                    match series.shape {
                        Shape::Line => pts.push(format!("{:.1},{:.1}", x0(h as f64 + 0.5), y(v))),
                        Shape::Step => {
                            pts.push(format!("{:.1},{:.1}", x0(h as f64), y(v)));
                            pts.push(format!("{:.1},{:.1}", x0(h as f64 + 1.0), y(v)));
                        }
                    }
                }
                let _ = writeln!(
                    s,
                    r##"<polyline class="series" fill="none" stroke="{}" stroke-width="2.5" stroke-linejoin="round"{dash} points="{}"/>"##,
                    series.colour,
                    pts.join(" ")
                );
                if series.shape == Shape::Line {
                    for &(h, v) in run {
                        let _ = writeln!(
                            s,
                            r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"##,
                            x0(h as f64 + 0.5),
                            y(v),
                            series.colour
                        );
                    }
                }
            }
        }
        // Legend below the axis label: the series, the bars, the target, the flags.
        let mut items: Vec<(String, String)> = self
            .series
            .iter()
            .map(|se| {
                let dash = if se.dashed {
                    r##" stroke-dasharray="6 4""##
                } else {
                    ""
                };
                (
                    format!(
                        r##"<line x1="0" x2="28" y1="0" y2="0" stroke="{}" stroke-width="3"{dash}/>"##,
                        se.colour
                    ),
                    se.label.clone(),
                )
            })
            .collect();
        items.push((
            r##"<rect x="4" y="-7" width="20" height="14" fill="#d9d9d9"/>"##.to_owned(),
            self.bar_label.clone(),
        ));
        if let Some((_, label)) = &self.target {
            items.push((
                r##"<line x1="0" x2="28" y1="0" y2="0" stroke="#333" stroke-width="1.5" stroke-dasharray="8 5"/>"##.to_owned(),
                label.clone(),
            ));
        }
        if !self.flagged.is_empty() {
            items.push((
                r##"<rect x="4" y="-4" width="20" height="8" fill="#d62728"/>"##.to_owned(),
                self.flag_label.clone(),
            ));
        }
        let per_row = 2;
        let col_w = pw / per_row as f64;
        let _ = writeln!(s, r##"<g class="legend">"##);
        for (i, (mark, label)) in items.iter().enumerate() {
            let lx = LEFT + col_w * (i % per_row) as f64;
            let ly = TOP + ph + 72.0 + 24.0 * (i / per_row) as f64;
            let _ = writeln!(
                s,
                r##"<g transform="translate({lx:.1} {ly:.1})">{mark}<text x="36" y="5">{}</text></g>"##,
                xml(label)
            );
        }
        s.push_str("</g>\n</svg>\n");
        s
    }
}

/// The runs of consecutive hours with a value.
fn runs(values: &[Option<f64>; 24]) -> Vec<Vec<(usize, f64)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for (h, v) in values.iter().enumerate() {
        match v {
            Some(v) => cur.push((h, *v)),
            None if !cur.is_empty() => out.push(std::mem::take(&mut cur)),
            None => {}
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_two_five() {
        assert_eq!(nice_step(23.0, 5.0), 5.0);
        assert_eq!(nice_step(9.0, 5.0), 2.0);
        assert_eq!(nice_step(0.8, 5.0), 0.2);
        assert_eq!(nice_step(0.0, 5.0), 1.0);
        assert_eq!(ceil_to(23.0, 5.0), 25.0);
        assert_eq!(ceil_to(0.0, 5.0), 5.0);
    }

    #[test]
    fn the_report_chart_has_its_labels_target_line_and_bars() {
        let mut sc = crate::Scenario::shuangfu();
        sc.orders_per_day = 80.0;
        sc.nurses = crate::Scenario::nurses_for(80.0);
        sc.days = 2;
        let r = crate::simulate(&sc, &yixin_domain::Catalog::seed(), &crate::Policy::ALL).unwrap();
        let svg = r.svg();
        for needle in [
            "时段 hour of day",
            "30分钟内到达 arrived within 30 min (%)",
            "目标 90% / target 90%",
            "订单量 / orders per hour",
            "Noto Sans CJK SC",
            "贪心 greedy",
            "批量 batch",
            "事后最优",
        ] {
            assert!(svg.contains(needle), "missing {needle}");
        }
        // The dashed target line sits at 90 % of the left axis.
        let target = svg
            .lines()
            .find(|l| l.contains(r#"class="target""#))
            .unwrap();
        let y90 = TOP + PLOT_H * 0.1;
        assert!(target.contains(&format!(r#"y1="{y90:.1}""#)), "{target}");
        assert!(target.contains("stroke-dasharray"));
        // A bar per hour with orders, its height the mean a day.
        let f = &r.policies["greedy"];
        let with_orders = f.by_hour.iter().filter(|h| h.orders > 0).count();
        assert_eq!(svg.matches(r#"class="bar""#).count(), with_orders);
        let peak = f.by_hour.iter().max_by_key(|h| h.orders).unwrap();
        assert!(svg.contains(&format!(
            "<title>{:02}:00 {:.1}</title>",
            peak.hour,
            peak.orders as f64 / 2.0
        )));
        // At least one line per policy (gaps split a line).
        assert!(svg.matches(r#"class="series""#).count() >= 3);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn gaps_split_a_line() {
        let mut v = [None; 24];
        v[1] = Some(1.0);
        v[2] = Some(2.0);
        v[5] = Some(3.0);
        let r = runs(&v);
        assert_eq!(r, vec![vec![(1, 1.0), (2, 2.0)], vec![(5, 3.0)]]);
    }
}
