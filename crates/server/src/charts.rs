//! Bar charts drawn as SVG on the server (dataset statistics). The live line charts are drawn by
//! `static/app.js` from the same metrics the API serves.

use std::fmt::Write;

/// One bar: its label (under it) and its height.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: u64,
}

/// Escapes text for SVG/XML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A bar chart titled `title` (an accessible `<svg role="img">` with a `<title>` and one `<rect>` per bar, each
/// with its value as a tooltip); both axes labelled: `x_label` under the bars, `y_label` (what is counted) beside
/// the counts.
pub fn bar_chart(title: &str, x_label: &str, y_label: &str, bars: &[Bar]) -> String {
    let (w, h) = (360.0_f64, 180.0_f64);
    let (left, bottom, top) = (44.0, 34.0, 10.0);
    let plot_w = w - left - 8.0;
    let plot_h = h - bottom - top;
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0).max(1) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart bars" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = escape(title)
    );
    let _ = write!(
        svg,
        concat!(
            r#"<line x1="{left}" y1="{y}" x2="{x2}" y2="{y}" class="axis"/><line x1="{left}" y1="{top}" x2="{left}" y2="{y}" class="axis"/>"#,
            r#"<text x="{tx}" y="{ty}" class="axis-label" text-anchor="middle">{xl}</text>"#,
            r#"<text x="{tick_x}" y="{top2}" class="tick" text-anchor="end">{max}</text><text x="{tick_x}" y="{y}" class="tick" text-anchor="end">0</text>"#,
            r#"<text x="10" y="{my}" class="axis-label" text-anchor="middle" transform="rotate(-90 10 {my})">{yl}</text>"#,
        ),
        left = left,
        top = top,
        y = top + plot_h,
        x2 = left + plot_w,
        tx = left + plot_w / 2.0,
        ty = h - 4.0,
        xl = escape(x_label),
        tick_x = left - 4.0,
        top2 = top + 8.0,
        max = max as u64,
        my = top + plot_h / 2.0,
        yl = escape(y_label),
    );
    let n = bars.len().max(1) as f64;
    let slot = plot_w / n;
    for (i, b) in bars.iter().enumerate() {
        let bh = plot_h * b.value as f64 / max;
        let x = left + slot * i as f64 + slot * 0.1;
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{bw:.1}" height="{bh:.1}" class="bar"><title>{label}: {v}</title></rect>"#,
            y = top + plot_h - bh,
            bw = slot * 0.8,
            label = escape(&b.label),
            v = b.value,
        );
        // Every label while they fit, else the first and the last.
        if bars.len() <= 12 || i == 0 || i + 1 == bars.len() {
            let _ = write!(
                svg,
                r#"<text x="{cx:.1}" y="{ly:.1}" class="tick" text-anchor="middle">{label}</text>"#,
                cx = x + slot * 0.4,
                ly = top + plot_h + 12.0,
                label = escape(&b.label),
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The bars of a word-count histogram.
pub fn histogram_bars(h: &ferrotune_store::Histogram) -> Vec<Bar> {
    h.bins
        .iter()
        .map(|b| Bar {
            label: if b.lo == b.hi {
                b.lo.to_string()
            } else {
                format!("{}–{}", b.lo, b.hi)
            },
            value: b.count,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rect_per_bar_scaled_to_the_largest_and_labels_escaped() {
        let bars = vec![
            Bar {
                label: "<b>".into(),
                value: 2,
            },
            Bar {
                label: "x".into(),
                value: 4,
            },
        ];
        let svg = bar_chart("t&t", "words", "prompts", &bars);
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
        assert!(svg.contains("t&amp;t"));
        // Both axes say what they measure.
        assert!(
            svg.contains(">words</text>") && svg.contains(">prompts</text>"),
            "{svg}"
        );
        // The larger bar fills the plot height (136 px), the smaller one half of it.
        assert!(
            svg.contains(r#"height="136.0""#) && svg.contains(r#"height="68.0""#),
            "{svg}"
        );
    }
}
