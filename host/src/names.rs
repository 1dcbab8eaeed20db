//! Friendly host names in wasmCloud's `adjective-noun-NNNN` shape.

const ADJECTIVES: &[&str] = &[
    "amber", "bold", "brisk", "calm", "clever", "crisp", "dapper", "eager", "fancy", "gentle",
    "glad", "hidden", "jolly", "keen", "lively", "lucky", "mellow", "nimble", "polite", "proud",
    "quiet", "rapid", "silent", "steady", "sunny", "swift", "tidy", "vivid", "wise", "young",
];
const NOUNS: &[&str] = &[
    "badger", "beacon", "brook", "cedar", "comet", "delta", "ember", "falcon", "fern", "glacier",
    "harbor", "heron", "island", "lantern", "maple", "meadow", "otter", "pebble", "pine", "quartz",
    "raven", "ridge", "river", "sparrow", "summit", "thicket", "trellis", "valley", "willow",
    "wren",
];

/// A friendly name derived from `seed` bytes (the host key), so a host with a
/// fixed seed keeps its name across restarts.
pub fn friendly_name(seed: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let adj = ADJECTIVES
        .get((h % ADJECTIVES.len() as u64) as usize)
        .copied()
        .unwrap_or("steady");
    let noun = NOUNS
        .get(((h >> 16) % NOUNS.len() as u64) as usize)
        .copied()
        .unwrap_or("trellis");
    format!("{adj}-{noun}-{:04}", (h >> 32) % 10_000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn stable_and_well_formed() {
        let a = super::friendly_name(b"NABC");
        assert_eq!(a, super::friendly_name(b"NABC"));
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2].len(), 4);
    }
}
