//! The operators' status page: every PoP's request rate, p99, cache hit
//! ratio, error rate and replication lag over the last minutes, as the
//! front door saw them, drawn server-side as SVG (plotters). No scripts,
//! nothing fetched from elsewhere; it reloads itself every 10 s. Pure:
//! slots in, HTML out.

use crate::window::{SLOT, Slot};
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// One PoP's row and series.
pub struct PopView<'a> {
    pub name: &'a str,
    pub region: &'a str,
    pub healthy: bool,
    /// Oldest first, one per slot, the newest (still filling) last.
    pub slots: Vec<Slot>,
}

type Metric = fn(&Slot) -> Option<f64>;

/// The charts, in page order: title, unit and how to read a slot.
const CHARTS: [(&str, &str, Metric); 5] = [
    ("Requests", "req/s", |s| Some(s.per_second())),
    ("p99 latency", "ms", |s| s.p99_ms()),
    ("Cache hit ratio", "%", |s| s.hit_ratio().map(|r| r * 100.0)),
    ("Errors (5xx)", "%", |s| s.error_ratio().map(|r| r * 100.0)),
    ("Replication lag", "ms", |s| s.lag_ms.map(|l| l as f64)),
];

pub fn page(pops: &[PopView]) -> String {
    let charts: Vec<(&str, &str, String)> = CHARTS
        .iter()
        .map(|(title, unit, metric)| (*title, *unit, chart(pops, title, unit, *metric)))
        .collect();
    let markup: Markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="refresh" content="10";
                title { "edgeshop status" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "edgeshop status" }
                p {
                    "Traffic through this front door, per PoP, in "
                    (SLOT.as_secs()) "-second slots; the newest slot is still filling."
                }
                table {
                    thead { tr {
                        th { "PoP" } th { "region" } th { "health" }
                        th { "req/s" } th { "p99 ms" } th { "hit ratio" }
                        th { "errors" } th { "lag ms" }
                    } }
                    tbody {
                        @for pop in pops {
                            @let last = last_full(&pop.slots);
                            tr {
                                td { (pop.name) }
                                td { (pop.region) }
                                td class=(if pop.healthy { "up" } else { "down" }) {
                                    (if pop.healthy { "healthy" } else { "down" })
                                }
                                td { (fmt(last.map(Slot::per_second), 1)) }
                                td { (fmt(last.and_then(Slot::p99_ms), 1)) }
                                td { (percent(last.and_then(Slot::hit_ratio))) }
                                td { (percent(last.and_then(Slot::error_ratio))) }
                                td { (fmt(last.and_then(|s| s.lag_ms.map(|l| l as f64)), 0)) }
                            }
                        }
                    }
                }
                @for (title, unit, svg) in &charts {
                    figure {
                        figcaption { (title) " (" (unit) ")" }
                        (PreEscaped(svg))
                    }
                }
            }
        }
    };
    markup.into_string()
}

/// The newest slot that is complete (the one before the filling one).
fn last_full(slots: &[Slot]) -> Option<&Slot> {
    slots.iter().rev().nth(1)
}

fn fmt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{:.1}%", v * 100.0))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}\
table{border-collapse:collapse;margin-bottom:1rem}\
th,td{padding:.3rem .7rem;border-bottom:1px solid #ddd;text-align:right}\
th:nth-child(-n+3),td:nth-child(-n+3){text-align:left}\
.up{color:#176b2c}.down{color:#b00020;font-weight:bold}\
figure{display:inline-block;margin:.5rem}figcaption{font-weight:bold}";

/// Line colours, told apart with any colour vision (Okabe and Ito), dark
/// enough on white.
const COLOURS: [(u8, u8, u8); 6] = [
    (0, 114, 178),
    (213, 94, 0),
    (0, 158, 115),
    (204, 121, 167),
    (230, 159, 0),
    (86, 180, 233),
];

/// One line per PoP over the window: x is seconds before now.
fn chart(pops: &[PopView], title: &str, unit: &str, metric: Metric) -> String {
    use plotters::prelude::*;
    let width = SLOT.as_secs_f64() * pops.first().map_or(1, |p| p.slots.len()) as f64;
    let top = pops
        .iter()
        .flat_map(|p| p.slots.iter().filter_map(metric))
        .fold(0.0, f64::max);
    let top = if top > 0.0 { top * 1.15 } else { 1.0 };
    let mut svg = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut svg, (560, 260)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(-width..0.0, 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc("seconds ago")
            .y_desc(unit)
            .label_style(("sans-serif", 11))
            .draw()?;
        for (i, pop) in pops.iter().enumerate() {
            let (r, g, b) = COLOURS[i % COLOURS.len()];
            let colour = RGBColor(r, g, b);
            let n = pop.slots.len() as f64;
            let points = pop.slots.iter().enumerate().filter_map(|(k, s)| {
                // A slot is drawn at its end; the filling one at "now".
                let x = -(n - 1.0 - k as f64) * SLOT.as_secs_f64();
                Some((x, metric(s)?))
            });
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                .label(pop.name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 11))
            .draw()?;
        root.present()?;
        Ok(())
    })();
    if let Err(e) = drawn {
        tracing::warn!(chart = title, error = %e, "status chart not drawn");
        return String::new();
    }
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::{Seen, Window};
    use std::time::Duration;

    #[test]
    fn the_page_has_a_row_and_a_line_per_pop_and_no_scripts() {
        let now = Duration::from_secs(10_000);
        let mut fra = Window::default();
        let mut sin = Window::default();
        for _ in 0..50 {
            let seen = Seen {
                latency: Duration::from_millis(3),
                error: false,
                hit: Some(true),
            };
            fra.record(now - SLOT, seen);
            sin.record(
                now - SLOT,
                Seen {
                    hit: Some(false),
                    ..seen
                },
            );
        }
        sin.record_lag(now - SLOT, 120);
        let html = page(&[
            PopView {
                name: "fra",
                region: "eu",
                healthy: true,
                slots: fra.series(now),
            },
            PopView {
                name: "sin<x>",
                region: "ap",
                healthy: false,
                slots: sin.series(now),
            },
        ]);
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        // Names are escaped; each PoP has its row with the last full slot.
        assert!(html.contains("sin&lt;x&gt;"), "{html}");
        assert!(
            html.contains("<td>fra</td><td>eu</td><td class=\"up\">healthy</td><td>5.0</td>"),
            "{html}"
        );
        assert!(html.contains("<td>100.0%</td>"), "{html}");
        assert!(html.contains("<td class=\"down\">down</td>"), "{html}");
        assert!(html.contains("<td>120</td>"), "{html}");
        // Five charts, each a line per PoP.
        assert_eq!(html.matches("<svg").count(), 5, "{html}");
        assert!(html.matches("<polyline").count() >= 2 * 4, "{html}");
    }
}
