//! Interfaces the wasmCloud host knows (wadm's typo table) and a "did you mean" helper.

/// A known package and its interfaces.
pub type KnownPackage = (&'static str, &'static [&'static str]);
/// A known namespace and its packages.
pub type KnownNamespace = (&'static str, &'static [KnownPackage]);

/// `namespace → package → interfaces` that the wasmCloud 1.x host and its first-party
/// providers serve, as listed by wadm 0.21.1. A link under one of these namespaces
/// naming another package or interface is probably a typo (a warning, not an error:
/// it may be an interface newer than this table). Other namespaces are custom and not
/// checked.
pub const KNOWN_INTERFACES: &[KnownNamespace] = &[
    (
        "wrpc",
        &[
            ("blobstore", &["blobstore"]),
            ("http", &["incoming-handler", "outgoing-handler"]),
            ("keyvalue", &["atomics", "store"]),
        ],
    ),
    (
        "wasi",
        &[
            ("blobstore", &["blobstore"]),
            ("config", &["runtime"]),
            ("http", &["incoming-handler", "outgoing-handler"]),
            ("keyvalue", &["atomics", "batch", "store", "watch"]),
            ("logging", &["logging"]),
        ],
    ),
    ("wasmcloud", &[("messaging", &["consumer", "handler"])]),
];

/// The packages of a known namespace.
pub(super) fn packages(
    namespace: &str,
) -> Option<&'static [(&'static str, &'static [&'static str])]> {
    KNOWN_INTERFACES
        .iter()
        .find(|(ns, _)| *ns == namespace)
        .map(|(_, packages)| *packages)
}

/// The candidate closest to `input`, if it is close enough to be a likely typo: at most
/// a third of the input's length (and at least 2) edits away, or one being a prefix of
/// the other with at least 3 characters in common (`linkdef` → `link`).
pub(super) fn closest<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let budget = (input.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .filter(|c| *c != input)
        .map(|c| {
            let shorter = c.chars().count().min(input.chars().count());
            let prefix = shorter >= 3 && (input.starts_with(c) || c.starts_with(input));
            (c, if prefix { 0 } else { edit_distance(input, c) })
        })
        .filter(|(_, d)| *d <= budget)
        .min_by_key(|(_, d)| *d)
        .map(|(c, _)| c)
}

/// `; did you mean 'X'?` or nothing.
pub(super) fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    closest(input, candidates)
        .map(|c| format!("; did you mean '{c}'?"))
        .unwrap_or_default()
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = Vec::with_capacity(b.len() + 1);
        row.push(i + 1);
        for ((cb, diag), up) in b.iter().zip(prev.iter()).zip(prev.iter().skip(1)) {
            let left = row.last().copied().unwrap_or(usize::MAX);
            let substitute = diag + usize::from(ca != *cb);
            row.push(substitute.min(up + 1).min(left.saturating_add(1)));
        }
        prev = row;
    }
    prev.last().copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("atomic", "atomics"), 1);
        assert_eq!(edit_distance("httpclyent", "httpclient"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn closest_suggests_only_likely_typos() {
        assert_eq!(closest("atomic", ["atomics", "store"]), Some("atomics"));
        assert_eq!(closest("keyvalues", ["keyvalue", "http"]), Some("keyvalue"));
        assert_eq!(closest("linkdef", ["link", "spreadscaler"]), Some("link"));
        assert_eq!(
            closest("eventual", ["atomics", "store", "batch", "watch"]),
            None
        );
    }

    #[test]
    fn table_lookup() {
        let wasi = packages("wasi").expect("wasi is known");
        assert!(
            wasi.iter()
                .any(|(p, ifaces)| *p == "keyvalue" && ifaces.contains(&"atomics"))
        );
        assert!(packages("my-wasi").is_none());
    }
}
