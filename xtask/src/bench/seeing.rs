//! What seeing it run costs: the product hit on PoPs that differ only in
//! what they record (as shipped, with metrics; metrics off; every request
//! traced and exported over OTLP, with and without the middleware layers'
//! spans; none sampled; one trace in ten). Each variant runs
//! side by side with the shipped PoP, the same load on both at the same
//! time, in several rounds: this machine's speed swings by a third from
//! one run to the next, and only figures taken in the same moments
//! compare. A variant's cost is the median over the rounds of its ratio to
//! the shipped PoP, in req/s and in the PoP's own CPU time per request; a
//! second shipped PoP measured the same way says how far apart two equal
//! PoPs come out. Given another build of `edge-host` (`--against`), the
//! same rounds also run it beside this one, so that a change to the host
//! is measured the way tracing's cost is; given another manifest (a
//! `.toml`: the guests of another build, copied aside with `spin.toml`),
//! this host runs those guests beside its own.

use super::{Row, Target, bench_host, measure_side_by_side, otlp_sink, unreached_limits};
use crate::root;
use crate::up::Service;
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

/// Rounds per variant: enough for a median that one bad round does not
/// move, and even, so that each PoP's load starts first in half of them
/// (in one fixed order the second PoP came out about 3% cheaper against
/// an identical first one).
pub const ROUNDS: usize = 6;

/// One variant's rounds beside the shipped PoP's.
pub struct Pair {
    pub name: String,
    /// (shipped, variant), a pair per round.
    pub rates: Vec<(f64, f64)>,
    pub cpu_us: Vec<(f64, f64)>,
}

impl Pair {
    /// A row named `name`, with no rounds yet.
    pub fn new(name: &str) -> Pair {
        Pair {
            name: name.to_string(),
            rates: Vec::new(),
            cpu_us: Vec::new(),
        }
    }
}

pub struct Cost {
    pub seconds: u64,
    /// Connections to each PoP of a pair.
    pub connections: usize,
    pub pairs: Vec<Pair>,
}

/// Runs each variant beside the `shipped` PoP, round by round, with
/// `connections` split between the two.
pub fn run(
    rt: &tokio::runtime::Runtime,
    catalog: &Path,
    shipped: &Service,
    paths: &[String],
    seconds: u64,
    connections: usize,
    side_by_side: super::SideBySide<'_>,
) -> Result<Cost> {
    let against = side_by_side.against;
    let sink = rt.block_on(otlp_sink())?;
    let variants: [(&str, Vec<(&str, &str)>); ROWS.len()] = [
        // An identical PoP: how far apart two equal ones come out, the
        // floor under every other row.
        (ROWS[0], vec![]),
        (ROWS[1], vec![("EDGESHOP_METRICS", "off")]),
        (
            ROWS[2],
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", sink.as_str())],
        ),
        (
            // What the spans of the middleware layers cost on top.
            ROWS[3],
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", sink.as_str()),
                ("EDGESHOP_TRACE_LAYERS", "off"),
            ],
        ),
        (
            // What every request pays while spans are exported, sampled
            // or not: ids, `traceparent`, each layer's look at it.
            ROWS[4],
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", sink.as_str()),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0"),
            ],
        ),
        (
            // As a busy deployment would run it.
            ROWS[5],
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", sink.as_str()),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
            ],
        ),
    ];
    let mut pops = Vec::new();
    for (i, (name, env)) in variants.iter().enumerate() {
        if !chosen(i, name, side_by_side.rows) {
            continue;
        }
        let mut cmd = bench_host(catalog, &root().join("spin.toml"), &unreached_limits()?)?;
        cmd.envs(env.iter().copied());
        pops.push((name.to_string(), Service::start("edge-host", cmd)?));
    }
    if let Some(other) = against {
        // Resolved here: the host runs in the workspace root, not where
        // the command was typed.
        let other = &std::fs::canonicalize(other)
            .with_context(|| format!("--against {}", other.display()))?;
        let (name, cmd) = against_pop(other, |manifest| {
            bench_host(catalog, manifest, &unreached_limits()?)
        })?;
        pops.push((name, Service::start("edge-host", cmd)?));
    }
    let each = (connections / 2).max(1);
    let mut pairs: Vec<Pair> = pops
        .iter()
        .map(|(name, _)| Pair::new(&format!("cache hit, {name}")))
        .collect();
    for round in 0..ROUNDS {
        for ((name, pop), pair) in pops.iter().zip(&mut pairs) {
            let reference = ("shipped", target(shipped, paths));
            let variant = (name.as_str(), target(pop, paths));
            one_round(rt, round, reference, variant, seconds, each, pair)?;
        }
    }
    Ok(Cost {
        seconds,
        connections: each,
        pairs,
    })
}

/// The side-by-side rows, each a PoP beside the shipped one.
const ROWS: [&str; 6] = [
    "as shipped, a second PoP (the noise floor)",
    "metrics off",
    "traced (OTLP)",
    "traced, no layer spans",
    "traced, none sampled",
    "traced, 1 in 10 sampled",
];

/// Refuses a `--row` that names none of the rows, before anything is
/// built or started.
pub fn check_rows(rows: &[String]) -> Result<()> {
    if let Some(unknown) = rows
        .iter()
        .find(|row| !ROWS.iter().any(|name| name.contains(row.as_str())))
    {
        bail!("--row {unknown:?} names none of the side-by-side rows: {ROWS:?}");
    }
    Ok(())
}

/// Whether the `i`th variant, `name`, runs when `rows` are asked for:
/// the first, a second shipped PoP, always, since it says how far apart
/// equal PoPs come out in the same run.
fn chosen(i: usize, name: &str, rows: &[String]) -> bool {
    i == 0 || rows.is_empty() || rows.iter().any(|row| name.contains(row.as_str()))
}

/// Round `round` of `variant` beside `reference`, at the same moments,
/// `connections` each; which load starts first alternates with the
/// round. Adds the round's figures to `pair`, the reference's first.
pub fn one_round(
    rt: &tokio::runtime::Runtime,
    round: usize,
    reference: (&str, Target<'_>),
    variant: (&str, Target<'_>),
    seconds: u64,
    connections: usize,
    pair: &mut Pair,
) -> Result<()> {
    let reference_first = round.is_multiple_of(2);
    let targets = if reference_first {
        [reference, variant]
    } else {
        [variant, reference]
    };
    let rows = measure_side_by_side(rt, &targets, seconds, connections)?;
    let (r, v) = if reference_first {
        (&rows[0], &rows[1])
    } else {
        (&rows[1], &rows[0])
    };
    pair.rates.push((rate(r), rate(v)));
    pair.cpu_us.push((cpu_us(r), cpu_us(v)));
    Ok(())
}

/// The PoP `--against` names, and what its rows are called: another
/// build of the host on the shipped manifest, or, for a `.toml`, this
/// host on that manifest (another build's guests). `host` makes this
/// build's bench host for a manifest.
fn against_pop(other: &Path, host: impl Fn(&Path) -> Result<Command>) -> Result<(String, Command)> {
    Ok(if other.extension().is_some_and(|e| e == "toml") {
        (
            format!("this host on the guests of {}", other.display()),
            host(other)?,
        )
    } else {
        (
            format!("the edge host at {}", other.display()),
            other_host(other, &host(&root().join("spin.toml"))?),
        )
    })
}

/// `host` (this build's edge host command) run by the binary at `other`.
/// Its deny adapter is named, since the default is found beside the
/// binary.
fn other_host(other: &Path, host: &Command) -> Command {
    let mut cmd = super::in_the_same_place(other, host);
    cmd.args(host.get_args())
        .arg("--deny-adapter")
        .arg(root().join("target/components/deny.wasm"));
    cmd
}

/// The product hit on `pop`, counting its CPU time.
fn target<'a>(pop: &'a Service, paths: &'a [String]) -> Target<'a> {
    Target {
        url: &pop.url,
        paths,
        server: Some(pop.pid()),
        ..Target::default()
    }
}

fn rate(row: &Row) -> f64 {
    row.requests as f64 / row.elapsed.as_secs_f64()
}

fn cpu_us(row: &Row) -> f64 {
    match row.server_cpu {
        Some(cpu) if row.requests > 0 => cpu.as_secs_f64() * 1e6 / row.requests as f64,
        _ => 0.0,
    }
}

/// Each round's variant over its shipped figure, sorted.
fn ratios(rounds: &[(f64, f64)]) -> Vec<f64> {
    let mut r: Vec<f64> = rounds
        .iter()
        .filter(|(shipped, _)| *shipped > 0.0)
        .map(|(shipped, variant)| variant / shipped)
        .collect();
    r.sort_by(f64::total_cmp);
    r
}

/// The cost table, under the bench's.
pub fn print(cost: &Cost) -> String {
    table(
        &format!(
            "What seeing it costs: the product hit, each PoP side by side with the shipped \
             one ({} connections each, the same moments, which load starts first alternating), \
             {ROUNDS} rounds of {}s; the change against the shipped PoP is the median over the \
             rounds (and the range). The first row is a second shipped PoP: changes no larger \
             than its are noise.",
            cost.connections, cost.seconds
        ),
        "PoP",
        "shipped",
        &cost.pairs,
    )
}

/// `pairs` as a table under `intro`, each row a `what` against
/// `reference`.
pub fn table(intro: &str, what: &str, reference: &str, pairs: &[Pair]) -> String {
    let mut out = format!(
        "\n{intro}\n\n\
         | {what} | req/s by round ({reference}/this) | req/s vs {reference} | \
         CPU µs/request by round ({reference}/this) | CPU vs {reference} |\n\
         |---|---|---:|---|---:|\n"
    );
    for p in pairs {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            p.name,
            each(&p.rates),
            change(&p.rates),
            each(&p.cpu_us),
            change(&p.cpu_us),
        ));
    }
    out
}

fn each(rounds: &[(f64, f64)]) -> String {
    let each: Vec<String> = rounds
        .iter()
        .map(|(s, v)| format!("{s:.0}/{v:.0}"))
        .collect();
    each.join(" ")
}

/// The median change over the rounds, and the range.
fn change(rounds: &[(f64, f64)]) -> String {
    let r = ratios(rounds);
    let pct = |x: f64| format!("{:+.1}%", (x - 1.0) * 100.0);
    match (median(&r), r.first(), r.last()) {
        (Some(m), Some(lo), Some(hi)) => format!("{} ({} to {})", pct(m), pct(*lo), pct(*hi)),
        _ => "-".to_string(),
    }
}

/// The median of sorted `values`: the middle one, or the mean of the two
/// middle ones.
fn median(values: &[f64]) -> Option<f64> {
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cost_is_the_median_of_same_round_ratios() {
        // The machine halves in round 2: the ratio holds at 0.9.
        let rates = [(10_000.0, 9_000.0), (5_000.0, 4_500.0), (10_000.0, 9_500.0)];
        assert_eq!(ratios(&rates), vec![0.9, 0.9, 0.95]);
        let cost = Cost {
            seconds: 4,
            connections: 16,
            pairs: vec![Pair {
                name: "cache hit, traced".to_string(),
                rates: rates.to_vec(),
                cpu_us: vec![(100.0, 104.0), (200.0, 220.0), (100.0, 103.0)],
            }],
        };
        let table = print(&cost);
        assert!(
            table.contains(
                "| cache hit, traced | 10000/9000 5000/4500 10000/9500 | -10.0% (-10.0% to -5.0%) \
                 | 100/104 200/220 100/103 | +4.0% (+3.0% to +10.0%) |"
            ),
            "{table}"
        );
        // An even count of rounds: the mean of the middle two.
        assert_eq!(median(&[0.9, 1.0, 1.1, 1.3]), Some(1.05));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn asked_for_rows_run_beside_the_noise_floor() {
        use super::chosen;
        let rows = ["1 in 10".to_string()];
        assert!(chosen(
            0,
            "as shipped, a second PoP (the noise floor)",
            &rows
        ));
        assert!(chosen(5, "traced, 1 in 10 sampled", &rows));
        assert!(!chosen(1, "metrics off", &rows));
        assert!(!chosen(2, "traced (OTLP)", &rows));
        // None asked for: every row.
        assert!(chosen(1, "metrics off", &[]));
    }

    #[test]
    fn a_row_named_nowhere_is_refused_with_the_names() {
        use super::check_rows;
        assert!(check_rows(&["1 in 10".to_string(), "metrics".to_string()]).is_ok());
        let e = check_rows(&["1 in 100".to_string()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"1 in 100\"") && e.contains("traced, none sampled"),
            "{e}"
        );
    }

    #[test]
    fn a_manifest_runs_on_this_host_and_a_binary_on_the_shipped_manifest() {
        let host = |manifest: &Path| {
            let mut cmd = Command::new(root().join("target/release/edge-host"));
            cmd.arg("--manifest").arg(manifest);
            Ok(cmd)
        };
        let args = |cmd: &Command| -> Vec<String> {
            cmd.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let (name, cmd) = against_pop(Path::new("/before/spin.toml"), host).unwrap();
        assert_eq!(name, "this host on the guests of /before/spin.toml");
        assert_eq!(cmd.get_program(), root().join("target/release/edge-host"));
        assert_eq!(args(&cmd), ["--manifest", "/before/spin.toml"]);
        let (name, cmd) = against_pop(Path::new("/before/edge-host"), host).unwrap();
        assert_eq!(name, "the edge host at /before/edge-host");
        assert_eq!(cmd.get_program(), "/before/edge-host");
        assert_eq!(
            args(&cmd)[..2],
            [
                "--manifest".to_string(),
                root().join("spin.toml").display().to_string()
            ]
        );
    }

    #[test]
    fn another_build_runs_as_this_one_would_with_its_deny_adapter_named() {
        let mut host = Command::new(root().join("target/release/edge-host"));
        host.current_dir(root())
            .args(["--manifest", "spin.toml", "--pop", "bench"])
            .env("SPIN_VARIABLE_RATELIMIT_POLICIES", "[]")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        let other = other_host(Path::new("/builds/edge-host-before"), &host);
        assert_eq!(other.get_program(), "/builds/edge-host-before");
        assert_eq!(other.get_current_dir(), Some(root().as_path()));
        let args: Vec<_> = other.get_args().collect();
        let deny = root().join("target/components/deny.wasm");
        assert_eq!(
            args,
            [
                "--manifest".as_ref(),
                "spin.toml".as_ref(),
                "--pop".as_ref(),
                "bench".as_ref(),
                "--deny-adapter".as_ref(),
                deny.as_os_str(),
            ]
        );
        let envs: Vec<_> = other.get_envs().collect();
        assert!(envs.contains(&(
            "SPIN_VARIABLE_RATELIMIT_POLICIES".as_ref(),
            Some("[]".as_ref())
        )));
        assert!(envs.contains(&("OTEL_EXPORTER_OTLP_ENDPOINT".as_ref(), None)));
    }
}
