//! Two tiny SVG chart writers (a line/point chart and a bar chart): enough for the report's
//! plots without a plotting dependency.

const W: f64 = 640.0;
const H: f64 = 400.0;
const L: f64 = 70.0; // left margin (y labels)
const B: f64 = 50.0; // bottom margin (x labels)
const T: f64 = 30.0; // top margin (title)
const R: f64 = 20.0;
const COLORS: [&str; 5] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|m| *m >= v)
        .unwrap_or(10.0 * p)
}

fn frame(title: &str, xlabel: &str, ylabel: &str, y0: f64, y1: f64) -> String {
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n\
         <text x=\"15\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 15 {})\">{}</text>\n",
        W / 2.0,
        esc(title),
        L + (W - L - R) / 2.0,
        H - 10.0,
        esc(xlabel),
        T + (H - T - B) / 2.0,
        T + (H - T - B) / 2.0,
        esc(ylabel)
    );
    for i in 0..=5 {
        let v = y0 + (y1 - y0) * f64::from(i) / 5.0;
        let y = H - B - (H - T - B) * f64::from(i) / 5.0;
        s.push_str(&format!(
            "<line x1=\"{L}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
            W - R,
            L - 5.0,
            y + 4.0,
            tick(v, (y1 - y0) / 5.0)
        ));
    }
    s.push_str(&format!(
        "<line x1=\"{L}\" x2=\"{L}\" y1=\"{T}\" y2=\"{}\" stroke=\"black\"/><line x1=\"{L}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"black\"/>\n",
        H - B,
        W - R,
        H - B,
        H - B
    ));
    s
}

/// An axis tick label with as many decimals as the tick step needs.
fn tick(v: f64, step: f64) -> String {
    if v.abs() >= 1e3 || step >= 1.0 && (step - step.round()).abs() < 1e-9 {
        return fmt(v);
    }
    let decimals = (-step.log10().floor()).max(0.0) as usize + 1;
    format!("{v:.decimals$}")
}

fn fmt(v: f64) -> String {
    if v.abs() >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if v.abs() >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v.abs() >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v.abs() >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// One series: label, points, whether to join them with a line.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub line: bool,
}

/// A line/point chart; the y axis spans `[y_min, max]`.
pub fn lines(title: &str, xlabel: &str, ylabel: &str, series: &[Series], y_min: f64) -> String {
    let all = series.iter().flat_map(|s| s.points.iter());
    let (x1, y1) = all.fold((0f64, 0f64), |(a, b), (x, y)| (a.max(*x), b.max(*y)));
    let (x1, y1) = (
        nice_max(x1),
        if y_min > 0.0 {
            y1.max(y_min + 1e-9)
        } else {
            nice_max(y1)
        },
    );
    let sx = |x: f64| L + (W - L - R) * x / x1;
    let sy = |y: f64| H - B - (H - T - B) * (y - y_min) / (y1 - y_min);
    let mut s = frame(title, xlabel, ylabel, y_min, y1);
    for i in 0..=5 {
        let v = x1 * f64::from(i) / 5.0;
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            sx(v),
            H - B + 16.0,
            tick(v, x1 / 5.0)
        ));
    }
    for (i, se) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        if se.line && se.points.len() > 1 {
            let pts: Vec<String> = se
                .points
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                .collect();
            s.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>\n",
                pts.join(" ")
            ));
        }
        for (x, y) in &se.points {
            s.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{c}\"/>\n",
                sx(*x),
                sy(*y)
            ));
        }
        s.push_str(&format!(
            "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{c}\"/><text x=\"{}\" y=\"{}\">{}</text>\n",
            L + 10.0,
            T + 5.0 + 16.0 * i as f64,
            L + 25.0,
            T + 14.0 + 16.0 * i as f64,
            esc(&se.label)
        ));
    }
    s.push_str("</svg>\n");
    s
}

/// A bar chart of `(label, value)` pairs.
pub fn bars(title: &str, ylabel: &str, items: &[(String, f64)]) -> String {
    let y1 = nice_max(items.iter().map(|i| i.1).fold(0.0, f64::max));
    let mut s = frame(title, "", ylabel, 0.0, y1);
    let n = items.len().max(1) as f64;
    let slot = (W - L - R) / n;
    for (i, (label, v)) in items.iter().enumerate() {
        let h = (H - T - B) * v / y1;
        let x = L + slot * i as f64 + slot * 0.15;
        s.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"/>\n\
             <text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            H - B - h,
            slot * 0.7,
            COLORS[0],
            x + slot * 0.35,
            H - B + 16.0,
            esc(label),
            x + slot * 0.35,
            H - B - h - 4.0,
            fmt(*v)
        ));
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::{bars, esc, fmt, lines, nice_max, tick, Series};

    /// The numbers of attribute `attr` on each `<tag …>` of `svg` that has one, in order.
    fn attrs(svg: &str, tag: &str, attr: &str) -> Vec<f64> {
        svg.split(&format!("<{tag} "))
            .skip(1)
            .filter_map(|t| {
                let t = format!(" {}", &t[..t.find('>').unwrap()]);
                let v = t.split(&format!(" {attr}=\"")).nth(1)?;
                v[..v.find('"').unwrap()].parse().ok()
            })
            .collect()
    }

    fn close(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 0.051, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn labels_axes_and_numbers() {
        assert_eq!(esc("a<b>&c"), "a&lt;b&gt;&amp;c");
        // The next of 1, 2, 2.5, 5, 10 times a power of ten at or above v; 1 for none.
        for (v, m) in [
            (0.0, 1.0),
            (-5.0, 1.0),
            (1.0, 1.0),
            (1.5, 2.0),
            (2.2, 2.5),
            (3.0, 5.0),
            (7.0, 10.0),
            (50.0, 50.0),
            (51.0, 100.0),
            (0.03, 0.05),
        ] {
            assert!((nice_max(v) - m).abs() < 1e-12, "{v}: {}", nice_max(v));
        }
        for (v, s) in [
            (2.5e9, "2.5G"),
            (-3e6, "-3.0M"),
            (1500.0, "1.5k"),
            (999.0, "999"),
            (10.0, "10"),
            (0.0, "0"),
            (5.0, "5.00"),
            (-9.5, "-9.50"),
        ] {
            assert_eq!(fmt(v), s, "{v}");
        }
        // Whole steps: as `fmt`; else one decimal more than the step's first digit needs.
        assert_eq!(tick(1500.0, 0.5), "1.5k");
        assert_eq!(tick(40.0, 20.0), "40");
        assert_eq!(tick(1.0, 1.0), "1.00");
        assert_eq!(tick(2.5, 0.5), "2.50");
        assert_eq!(tick(0.04, 0.02), "0.040");
        assert_eq!(tick(7.5, 2.5), "7.5");
        assert_eq!(tick(0.123, 0.001), "0.1230");
    }

    /// Bars from the axis (y 350) up to their value over the rounded-up maximum (320 px for the
    /// whole axis), each in 70 % of its share of the 550 px plot width, 15 % in from its left.
    #[test]
    fn bars_are_as_tall_as_their_values() {
        let items = [("a".to_string(), 40.0), ("<b>".to_string(), 20.0)];
        let s = bars("t", "µs", &items);
        // Axis top: nice_max(40) = 50. Slots of 275: x = 70 + 41.25 and 70 + 275 + 41.25.
        close(&attrs(&s, "rect", "x"), &[111.25, 386.25]);
        close(&attrs(&s, "rect", "width"), &[192.5, 192.5]);
        close(&attrs(&s, "rect", "height"), &[256.0, 128.0]);
        close(&attrs(&s, "rect", "y"), &[94.0, 222.0]);
        // Labels under the axis and values above the bars, at the bars' middles.
        assert!(
            s.contains("<text x=\"207.5\" y=\"366\" text-anchor=\"middle\">a</text>"),
            "{s}"
        );
        assert!(
            s.contains("<text x=\"482.5\" y=\"366\" text-anchor=\"middle\">&lt;b&gt;</text>"),
            "{s}"
        );
        assert!(s.contains("<text x=\"207.5\" y=\"90.0\""), "{s}");
        // The axes: x = 70 from y 30 down to 350, y = 350 from x 70 to 620.
        assert!(s.contains("<line x1=\"70\" x2=\"70\" y1=\"30\" y2=\"350\" stroke=\"black\"/><line x1=\"70\" x2=\"620\" y1=\"350\" y2=\"350\" stroke=\"black\"/>"), "{s}");
        // The value above each bar, 4 px up.
        assert!(
            s.contains("y=\"90.0\" text-anchor=\"middle\">40</text>"),
            "{s}"
        );
        assert!(
            s.contains("y=\"218.0\" text-anchor=\"middle\">20</text>"),
            "{s}"
        );
        // Six y ticks 0 to 50, every 64 px from the axis up.
        close(
            &attrs(&s, "line", "y1")[..6],
            &[350.0, 286.0, 222.0, 158.0, 94.0, 30.0],
        );
        for (i, v) in ["0", "10", "20", "30", "40", "50"].iter().enumerate() {
            let y = 354.0 - 64.0 * i as f64;
            assert!(
                s.contains(&format!("y=\"{y}\" text-anchor=\"end\">{v}</text>")),
                "{v}: {s}"
            );
        }
        // Title centred over the 640 px, the y label at mid-height of the plot (30 + 160).
        assert!(
            s.contains("<text x=\"320\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">t</text>")
        );
        assert!(
            s.contains("transform=\"rotate(-90 15 190)\">µs</text>"),
            "{s}"
        );
        assert!(s.ends_with("</svg>\n"));
    }

    /// Points at x · 550 / x-max from x 70 and (y − y_min) · 320 / (y-max − y_min) up from y 350;
    /// a line through the points of a series that has one and more than one point; each
    /// series' legend 16 px below the one before, in its colour.
    #[test]
    fn lines_place_points_on_the_axes() {
        let series = [
            Series {
                label: "one".into(),
                points: vec![(0.0, 60.0), (4.0, 80.0), (8.0, 100.0)],
                line: true,
            },
            Series {
                label: "two".into(),
                points: vec![(2.0, 70.0)],
                line: true,
            },
            Series {
                label: "three".into(),
                points: vec![(6.0, 90.0), (7.0, 95.0)],
                line: false,
            },
        ];
        let s = lines("t", "MFLOPs", "acc", &series, 50.0);
        // x-max nice_max(8) = 10: 55 px a unit; y from 50 to 100: 6.4 px a unit.
        close(
            &attrs(&s, "circle", "cx"),
            &[70.0, 290.0, 510.0, 180.0, 400.0, 455.0],
        );
        close(
            &attrs(&s, "circle", "cy"),
            &[286.0, 158.0, 30.0, 222.0, 94.0, 62.0],
        );
        assert_eq!(s.matches("<polyline").count(), 1, "{s}");
        assert!(
            s.contains("points=\"70.0,286.0 290.0,158.0 510.0,30.0\""),
            "{s}"
        );
        assert!(s.contains("r=\"4\" fill=\"#d62728\""), "{s}");
        // Legends at y 35, 51, 67; x ticks 0, 2, …, 10 every 110 px (a whole step: written as
        // `fmt` writes numbers, two decimals below 10).
        close(&attrs(&s, "rect", "y"), &[35.0, 51.0, 67.0]);
        for (y, label) in [(44, "one"), (60, "two"), (76, "three")] {
            assert!(
                s.contains(&format!("<text x=\"95\" y=\"{y}\">{label}</text>")),
                "{s}"
            );
        }
        for (i, v) in ["0", "2.00", "4.00", "6.00", "8.00", "10"]
            .iter()
            .enumerate()
        {
            let x = 70.0 + 110.0 * i as f64;
            assert!(
                s.contains(&format!(
                    "<text x=\"{x}\" y=\"366\" text-anchor=\"middle\">{v}</text>"
                )),
                "{v}: {s}"
            );
        }
        // y ticks from y_min: 50, 60, … 100.
        assert!(s.contains("text-anchor=\"end\">50</text>"), "{s}");
        assert!(s.contains("text-anchor=\"end\">100</text>"), "{s}");
        assert!(
            s.contains("<text x=\"345\" y=\"390\" text-anchor=\"middle\">MFLOPs</text>"),
            "{s}"
        );
        // From a y_min above 0 the axis ends at the largest y, 95, not rounded up to 100: 60 is
        // 10 / 45 of the way up.
        let top = [Series {
            label: "t".into(),
            points: vec![(1.0, 60.0), (2.0, 95.0)],
            line: false,
        }];
        let s = lines("t", "x", "y", &top, 50.0);
        close(
            &attrs(&s, "circle", "cy"),
            &[350.0 - 320.0 * 10.0 / 45.0, 30.0],
        );
        // Nothing above y_min: the axis spans y_min to just above it, and a point under y_min
        // is drawn under the x axis, not over the plot.
        let low = [Series {
            label: "t".into(),
            points: vec![(1.0, 40.0)],
            line: false,
        }];
        let s = lines("t", "x", "y", &low, 50.0);
        assert!(attrs(&s, "circle", "cy")[0] > 350.0, "{s}");
        // From 0, the y axis rounds its top up: 100 → 100, points over 0–100.
        let s = lines("t", "x", "y", &series[1..2], 0.0);
        close(&attrs(&s, "circle", "cy"), &[350.0 - 320.0 * 0.7]);
        close(&attrs(&s, "circle", "cx"), &[70.0 + 550.0]);
    }
}
