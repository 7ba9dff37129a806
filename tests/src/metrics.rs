//! Reading a process's `/metrics` the way Prometheus does, for tests that
//! assert metrics move as a workload says they must.

use crate::{Reply, get};

/// A sample's labels, in order.
pub type Labels = Vec<(String, String)>;

/// One scrape: every sample as name, labels and value.
#[derive(Debug)]
pub struct Scrape {
    pub text: String,
    samples: Vec<(String, Labels, f64)>,
}

impl Scrape {
    /// The sum of every sample named `name` whose labels include all of
    /// `labels` (0 when there is none: a counter not yet touched).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Whether any sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, _, _)| n == name)
    }

    /// Every label set of the samples named `name`.
    pub fn series(&self, name: &str) -> Vec<&[(String, String)]> {
        self.samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, l, _)| l.as_slice())
            .collect()
    }
}

/// Scrapes `{base}/metrics`, asserting what Prometheus relies on: a 200
/// in the OpenMetrics text format, ending with `# EOF`.
pub async fn scrape(base: &str) -> Scrape {
    let r: Reply = get(&format!("{base}/metrics")).await;
    assert_eq!(r.status, 200, "{base}/metrics: {}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{base}/metrics: {:?}",
        r.header("content-type")
    );
    parse(r.text())
}

pub fn parse(text: String) -> Scrape {
    assert!(text.ends_with("# EOF\n"), "no # EOF:\n{text}");
    let mut samples = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, labels(rest.strip_suffix('}').expect("labels"))),
            None => (series, Vec::new()),
        };
        samples.push((name.to_string(), labels, value));
    }
    Scrape { text, samples }
}

/// `a="x",b="y"`; values here hold no quotes or commas of their own
/// except inside quotes, which this walks.
fn labels(text: &str) -> Labels {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let end = after.find('"').expect("closing quote");
        out.push((
            key.trim_start_matches(',').to_string(),
            after[..end].to_string(),
        ));
        rest = &after[end + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn samples_are_summed_by_label_subset() {
        let s = super::parse(
            "# TYPE x counter\nx_total{route=\"/a/...\",code=\"200\"} 2\nx_total{route=\"/b\",code=\"200\"} 3\nup 1\n# EOF\n"
                .into(),
        );
        assert_eq!(s.sum("x_total", &[("code", "200")]), 5.0);
        assert_eq!(s.sum("x_total", &[("route", "/a/...")]), 2.0);
        assert_eq!(s.sum("up", &[]), 1.0);
        assert_eq!(s.sum("missing", &[]), 0.0);
    }
}
