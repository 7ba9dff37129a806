//! Which PoP serves a request: pure, so every rule is tested without I/O.
//!
//! The nearest PoP is the first healthy one in the client region's
//! preference list; the rest follow as failover candidates, then any other
//! healthy PoP. A PoP that is down is only tried when nothing else is up.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopEntry {
    pub name: String,
    pub region: String,
}

/// The PoPs in the order a request should try them.
pub fn candidates<'a>(
    pops: &'a [PopEntry],
    healthy: &[bool],
    client_region: Option<&str>,
    preferences: &BTreeMap<String, Vec<String>>,
) -> Vec<&'a PopEntry> {
    let mut order: Vec<usize> = Vec::with_capacity(pops.len());
    fn push(i: usize, order: &mut Vec<usize>) {
        if !order.contains(&i) {
            order.push(i);
        }
    }
    if let Some(region) = client_region {
        // Explicit preference list first, then PoPs in the same region.
        for name in preferences.get(region).into_iter().flatten() {
            if let Some(i) = pops.iter().position(|p| &p.name == name) {
                push(i, &mut order);
            }
        }
        for (i, p) in pops.iter().enumerate() {
            if p.region == region {
                push(i, &mut order);
            }
        }
    }
    for i in 0..pops.len() {
        push(i, &mut order);
    }
    // Stable partition: healthy first, in preference order.
    let (up, down): (Vec<usize>, Vec<usize>) = order
        .into_iter()
        .partition(|&i| healthy.get(i).copied().unwrap_or(false));
    up.into_iter().chain(down).map(|i| &pops[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pops() -> Vec<PopEntry> {
        [("fra", "eu"), ("iad", "us"), ("sin", "ap")]
            .iter()
            .map(|(n, r)| PopEntry {
                name: n.to_string(),
                region: r.to_string(),
            })
            .collect()
    }

    fn names(c: Vec<&PopEntry>) -> Vec<&str> {
        c.iter().map(|p| p.name.as_str()).collect()
    }

    fn prefs() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([("eu".to_string(), vec!["fra".to_string(), "iad".to_string()])])
    }

    #[test]
    fn nearest_first_then_preferences_then_the_rest() {
        let p = pops();
        assert_eq!(
            names(candidates(&p, &[true; 3], Some("eu"), &prefs())),
            ["fra", "iad", "sin"]
        );
        assert_eq!(
            names(candidates(&p, &[true; 3], Some("ap"), &prefs())),
            ["sin", "fra", "iad"]
        );
        assert_eq!(
            names(candidates(&p, &[true; 3], None, &prefs())),
            ["fra", "iad", "sin"]
        );
        assert_eq!(
            names(candidates(&p, &[true; 3], Some("mars"), &prefs())),
            ["fra", "iad", "sin"]
        );
    }

    #[test]
    fn unhealthy_pops_go_last() {
        let p = pops();
        assert_eq!(
            names(candidates(&p, &[false, true, true], Some("eu"), &prefs())),
            ["iad", "sin", "fra"]
        );
        assert_eq!(
            names(candidates(&p, &[true, true, false], Some("ap"), &prefs())),
            ["fra", "iad", "sin"]
        );
        // All down: still an order to try, nearest first.
        assert_eq!(
            names(candidates(&p, &[false; 3], Some("ap"), &prefs())),
            ["sin", "fra", "iad"]
        );
    }
}
