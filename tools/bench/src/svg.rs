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
