//! Placement arithmetic: wadm's weighted split of instances over spreads, and Trellis's
//! even split of a spread's instances over its eligible hosts.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use trellis_interfaces::manifest::{DEFAULT_SPREAD_WEIGHT, Spread, SpreadScalerProperty};

use crate::annotations::DEFAULT_SPREAD_NAME;

/// The spread used when a scaler lists none: any host, all instances.
#[must_use]
pub fn default_spread() -> Spread {
    Spread {
        name: DEFAULT_SPREAD_NAME.to_string(),
        requirements: BTreeMap::new(),
        weight: None,
    }
}

/// wadm 0.21's `compute_spread`: spreads ordered by weight (highest first, file order
/// among equals), each gets `instances * weight / total_weight` (rounded down), and
/// the instances lost to rounding go one by one to the spreads in that order. No
/// spreads means one default spread with every instance.
#[must_use]
pub fn compute_spread(property: &SpreadScalerProperty) -> Vec<(Spread, usize)> {
    if property.spread.is_empty() {
        return vec![(default_spread(), property.instances)];
    }
    let mut spreads = property.spread.clone();
    spreads.sort_by_key(|s| Reverse(s.weight.unwrap_or(DEFAULT_SPREAD_WEIGHT)));
    let total_weight: usize = spreads
        .iter()
        .map(|s| s.weight.unwrap_or(DEFAULT_SPREAD_WEIGHT))
        .sum();
    let mut counts: Vec<(Spread, usize)> = spreads
        .into_iter()
        .map(|s| {
            let weight = s.weight.unwrap_or(DEFAULT_SPREAD_WEIGHT);
            let count = property
                .instances
                .saturating_mul(weight)
                .checked_div(total_weight)
                .unwrap_or(0);
            (s, count)
        })
        .collect();
    let assigned: usize = counts.iter().map(|(_, c)| c).sum();
    let mut remainder = property.instances.saturating_sub(assigned);
    // Rounding loses fewer instances than there are spreads, so one pass suffices (as
    // in wadm); cycling only matters when every weight is 0, where wadm divides by 0.
    let spread_count = counts.len();
    let mut index = 0;
    while remainder > 0 {
        if let Some((_, count)) = counts.get_mut(index % spread_count) {
            *count += 1;
        }
        remainder -= 1;
        index += 1;
    }
    counts
}

/// Whether a host with `labels` satisfies every requirement of `spread` (exact match).
#[must_use]
pub fn matches(labels: &BTreeMap<String, String>, spread: &Spread) -> bool {
    spread
        .requirements
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
}

/// A host a spread may place on, with what it already runs for this scaler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Host id.
    pub host_id: &'a str,
    /// Instances of the current version running there.
    pub current: u32,
    /// Instances of any version of this app's workload running there.
    pub ours: u32,
    /// How many workloads (components and providers) the host runs in all.
    pub load: u32,
    /// This workload's rendezvous rank for the host ([`rendezvous`]).
    pub rank: u64,
}

/// A stable pseudo-random rank of `host` for `workload` (FNV-1a over both, mixed): among
/// equally good hosts each workload prefers a different one, so a thousand
/// single-instance applications deployed at once spread over the hosts instead of
/// all landing on the first by id, and the choice never changes while the hosts do
/// not (rendezvous hashing).
#[must_use]
pub fn rendezvous(workload: &str, host: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let h = workload
        .bytes()
        .chain(std::iter::once(0))
        .chain(host.bytes())
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    // FNV's high bits barely depend on the last bytes (host ids often differ only
    // there): finish with SplitMix64's mixer so every bit counts.
    let z = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Splits `total` instances over `candidates` as evenly as possible: every host gets
/// `total / k`, and the `total % k` hosts that get one more are those already running
/// the most (current version first, then any version), so a converged placement is a
/// fixed point and a rebalance moves as little as possible; among hosts equal on that,
/// the least loaded, then the workload's [`rendezvous`] rank, then the host id.
/// Hosts that get nothing are left out.
#[must_use]
pub fn split_evenly<'a>(total: usize, candidates: &[Candidate<'a>]) -> Vec<(&'a str, usize)> {
    let k = candidates.len();
    let Some(base) = total.checked_div(k) else {
        return Vec::new();
    };
    let remainder = total % k;
    let mut ordered = candidates.to_vec();
    ordered.sort_by_key(|c| {
        (
            Reverse(c.current),
            Reverse(c.ours),
            c.load,
            c.rank,
            c.host_id,
        )
    });
    ordered
        .into_iter()
        .enumerate()
        .map(|(i, c)| (c.host_id, base + usize::from(i < remainder)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Renders requirements for a message: `{zone=eu, tier=edge}`, or `{}` for any host.
#[must_use]
pub fn describe_requirements(spread: &Spread) -> String {
    let parts: Vec<String> = spread
        .requirements
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(name: &str, weight: Option<usize>) -> Spread {
        Spread {
            name: name.into(),
            requirements: BTreeMap::new(),
            weight,
        }
    }

    fn counts(instances: usize, spreads: Vec<Spread>) -> Vec<(String, usize)> {
        compute_spread(&SpreadScalerProperty {
            instances,
            spread: spreads,
        })
        .into_iter()
        .map(|(s, n)| (s.name, n))
        .collect()
    }

    #[test]
    fn weighted_split_matches_wadm() {
        assert_eq!(counts(12, vec![]), vec![("default".to_string(), 12)]);
        assert_eq!(
            counts(10, vec![spread("a", Some(100)), spread("b", Some(100))]),
            vec![("a".to_string(), 5), ("b".to_string(), 5)]
        );
        // Ordered by weight: b (40) then a (30); 7*40/70=4, 7*30/70=3.
        assert_eq!(
            counts(7, vec![spread("a", Some(30)), spread("b", Some(40))]),
            vec![("b".to_string(), 4), ("a".to_string(), 3)]
        );
        // Equal weights keep file order; the remainder goes to the first.
        assert_eq!(
            counts(7, vec![spread("a", None), spread("b", None)]),
            vec![("a".to_string(), 4), ("b".to_string(), 3)]
        );
        // wadm's "complex" case: 103 over weights 42, 3, 37, 384.
        assert_eq!(
            counts(
                103,
                vec![
                    spread("one", Some(42)),
                    spread("two", Some(3)),
                    spread("three", Some(37)),
                    spread("four", Some(384)),
                ]
            ),
            vec![
                ("four".to_string(), 85),
                ("one".to_string(), 10),
                ("three".to_string(), 8),
                ("two".to_string(), 0)
            ]
        );
        // Zero weights do not divide by zero.
        assert_eq!(
            counts(3, vec![spread("z", Some(0))]),
            vec![("z".to_string(), 3)]
        );
    }

    /// A candidate whose rank follows its id, so expectations read in id order.
    fn cand(host_id: &str, current: u32, ours: u32) -> Candidate<'_> {
        Candidate {
            host_id,
            current,
            ours,
            load: 0,
            rank: u64::from(host_id.bytes().next().unwrap_or(0)),
        }
    }

    #[test]
    fn equal_hosts_are_chosen_by_load_then_rendezvous_rank() {
        let mut hosts = [cand("a", 0, 0), cand("b", 0, 0), cand("c", 0, 0)];
        hosts[0].load = 5;
        hosts[1].load = 1;
        hosts[2].load = 1;
        assert_eq!(split_evenly(1, &hosts), vec![("b", 1)]);
        // Running it beats being idle.
        hosts[0].current = 1;
        hosts[0].ours = 1;
        assert_eq!(split_evenly(1, &hosts), vec![("a", 1)]);

        // Many single-instance workloads over ten idle hosts: rendezvous ranks spread
        // them (the first host by id would otherwise get all of them).
        let ids: Vec<String> = (0..10).map(|i| format!("NHOST{i}")).collect();
        let mut per_host = std::collections::BTreeMap::<&str, usize>::new();
        for w in 0..1000 {
            let workload = format!("app-{w}");
            let candidates: Vec<Candidate<'_>> = ids
                .iter()
                .map(|h| Candidate {
                    host_id: h,
                    current: 0,
                    ours: 0,
                    load: 0,
                    rank: rendezvous(&workload, h),
                })
                .collect();
            for (h, _) in split_evenly(1, &candidates) {
                *per_host.entry(h).or_default() += 1;
            }
        }
        assert_eq!(per_host.len(), 10, "{per_host:?}");
        assert!(
            per_host.values().all(|n| (60..=140).contains(n)),
            "{per_host:?}"
        );
        assert_eq!(rendezvous("a", "b"), rendezvous("a", "b"));
        assert_ne!(rendezvous("a", "b"), rendezvous("b", "a"));
    }

    #[test]
    fn even_split_spreads_over_hosts_for_real() {
        let hosts = [cand("a", 0, 0), cand("b", 0, 0)];
        assert_eq!(split_evenly(4, &hosts), vec![("a", 2), ("b", 2)]);
        let three = [cand("a", 0, 0), cand("b", 0, 0), cand("c", 0, 0)];
        assert_eq!(split_evenly(4, &three), vec![("a", 2), ("b", 1), ("c", 1)]);
        assert_eq!(split_evenly(1, &three), vec![("a", 1)]);
        assert_eq!(split_evenly(0, &three), vec![]);
        assert_eq!(split_evenly(5, &[]), vec![]);
    }

    #[test]
    fn even_split_prefers_hosts_already_running() {
        // One instance over three hosts stays where it runs.
        let hosts = [cand("a", 0, 0), cand("b", 0, 0), cand("c", 1, 1)];
        assert_eq!(split_evenly(1, &hosts), vec![("c", 1)]);
        // The extra instance goes to the host running the most.
        let hosts = [cand("a", 1, 1), cand("b", 2, 2), cand("c", 1, 1)];
        assert_eq!(split_evenly(4, &hosts), vec![("b", 2), ("a", 1), ("c", 1)]);
        // Current version beats an old one.
        let hosts = [cand("a", 0, 3), cand("b", 1, 1)];
        assert_eq!(split_evenly(1, &hosts), vec![("b", 1)]);
    }

    #[test]
    fn requirements_match_exactly() {
        let mut s = spread("eu", None);
        s.requirements.insert("zone".into(), "eu".into());
        let eu = BTreeMap::from([("zone".to_string(), "eu".to_string())]);
        let us = BTreeMap::from([("zone".to_string(), "us".to_string())]);
        assert!(matches(&eu, &s));
        assert!(!matches(&us, &s));
        assert!(!matches(&BTreeMap::new(), &s));
        assert!(matches(&us, &default_spread()));
        assert_eq!(describe_requirements(&s), "{zone=eu}");
    }
}
