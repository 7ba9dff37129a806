//! The bench's results as people read them: a Markdown table with each
//! row's ratio to the reference row of the same run, and an SVG chart of
//! req/s and p99 per row (plotters). Pure: rows in, text out.

use anyhow::Result;

/// One measured scenario, reduced to what the table shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub req_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    /// Share of cache answers that were hits, where the cache answered.
    pub hit_share: Option<f64>,
}

/// The table, with a `× ref` column when `reference` names a row.
pub fn markdown(lines: &[Line], reference: Option<&str>) -> String {
    let base = reference.and_then(|r| lines.iter().find(|l| l.name == r));
    let mut out = String::new();
    out.push_str("| scenario | req/s | × ref | p50 ms | p99 ms | errors | hits |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for l in lines {
        let ratio = match base {
            Some(b) if b.req_per_s > 0.0 => format!("{:.2}", l.req_per_s / b.req_per_s),
            _ => "-".to_string(),
        };
        let hits = l
            .hit_share
            .map_or("-".to_string(), |h| format!("{:.1}%", 100.0 * h));
        out.push_str(&format!(
            "| {} | {:.0} | {ratio} | {:.2} | {:.2} | {} | {hits} |\n",
            l.name.replace('|', "\\|"),
            l.req_per_s,
            l.p50_ms,
            l.p99_ms,
            l.errors
        ));
    }
    if let Some(b) = base {
        out.push_str(&format!(
            "\n× ref: req/s over `{}` in the same run.\n",
            b.name
        ));
    }
    out
}

/// Two bar charts side by side, one bar per row: req/s and p99 (ms).
pub fn svg(lines: &[Line]) -> Result<String> {
    use plotters::prelude::*;
    let mut text = String::new();
    let height = 80 + 28 * lines.len().max(1) as u32;
    {
        let root = SVGBackend::with_string(&mut text, (1200, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(760);
        let n = lines.len() as i32;
        let max_rate = lines.iter().map(|l| l.req_per_s).fold(1.0, f64::max) * 1.1;
        let max_p99 = lines.iter().map(|l| l.p99_ms).fold(1.0, f64::max) * 1.1;
        for (area, title, max, value, colour) in [
            (
                &left,
                "req/s",
                max_rate,
                (|l: &Line| l.req_per_s) as fn(&Line) -> f64,
                BLUE,
            ),
            (&right, "p99 ms", max_p99, |l: &Line| l.p99_ms, RED),
        ] {
            let labels = std::ptr::eq(area, &left);
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 18))
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(if labels { 420 } else { 8 })
                .build_cartesian_2d(0.0..max, (0..n).into_segmented())?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_labels(6)
                .y_labels(lines.len().max(1))
                .y_label_formatter(&|seg| match seg {
                    SegmentValue::CenterOf(i) if labels => lines
                        .get(*i as usize)
                        .map(|l| l.name.clone())
                        .unwrap_or_default(),
                    _ => String::new(),
                })
                .label_style(("sans-serif", 12))
                .draw()?;
            chart.draw_series(lines.iter().enumerate().map(|(i, l)| {
                let i = i as i32;
                Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (value(l), SegmentValue::Exact(i + 1)),
                    ],
                    colour.mix(0.6).filled(),
                )
            }))?;
        }
        root.present()?;
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, req_per_s: f64, p99_ms: f64) -> Line {
        Line {
            name: name.to_string(),
            req_per_s,
            p50_ms: p99_ms / 4.0,
            p99_ms,
            errors: 0,
            hit_share: None,
        }
    }

    #[test]
    fn the_table_gives_each_row_its_ratio_to_the_reference() {
        let lines = [line("ours", 12_000.0, 3.0), line("ref", 10_000.0, 4.0)];
        let md = markdown(&lines, Some("ref"));
        assert!(
            md.contains("| ours | 12000 | 1.20 | 0.75 | 3.00 | 0 | - |"),
            "{md}"
        );
        assert!(md.contains("| ref | 10000 | 1.00 |"), "{md}");
        assert!(md.contains("over `ref`"), "{md}");
        let md = markdown(&lines, None);
        assert!(md.contains("| ours | 12000 | - |"), "{md}");
    }

    #[test]
    fn the_chart_has_a_bar_and_a_label_per_row() {
        let lines = [
            line("hello | ours", 12_000.0, 3.0),
            line("ref", 10_000.0, 4.0),
        ];
        let svg = svg(&lines).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("hello | ours"), "{svg}");
        assert!(svg.matches("<rect").count() >= 4, "{svg}");
    }
}
