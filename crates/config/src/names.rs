//! Experiment names drawn for runs that have none: `adjective-animal`, derived from a number.

const ADJECTIVES: [&str; 32] = [
    "agile", "amber", "bold", "brave", "bright", "brisk", "calm", "clever", "cosmic", "crisp",
    "daring", "eager", "fancy", "gentle", "golden", "happy", "jolly", "keen", "lively", "lucky",
    "mellow", "nimble", "polite", "quick", "quiet", "rapid", "shiny", "silky", "steady", "swift",
    "witty", "zesty",
];

const ANIMALS: [&str; 32] = [
    "alpaca", "badger", "beaver", "bison", "condor", "coyote", "dolphin", "falcon", "ferret",
    "gecko", "heron", "ibex", "jaguar", "koala", "lemur", "llama", "lynx", "marten", "moose",
    "narwhal", "ocelot", "otter", "panda", "puffin", "quokka", "raven", "salmon", "tapir",
    "toucan", "walrus", "wombat", "yak",
];

/// SplitMix64: spreads the bits of `x` so that nearby inputs give unrelated outputs.
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An `adjective-animal` name; the same `entropy` gives the same name.
pub fn generate_name(entropy: u64) -> String {
    let bits = mix(entropy);
    let adjective = ADJECTIVES[(bits % ADJECTIVES.len() as u64) as usize];
    let animal = ANIMALS[((bits >> 32) % ANIMALS.len() as u64) as usize];
    format!("{adjective}-{animal}")
}

/// A number that differs from run to run (clock and process id), for [`crate::Experiment::fill_generated`].
pub fn fresh_entropy() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    mix(nanos ^ (u64::from(std::process::id()) << 32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_and_varied() {
        assert_eq!(generate_name(1), generate_name(1));
        let distinct: std::collections::HashSet<_> = (0..200).map(generate_name).collect();
        assert!(distinct.len() > 150, "{}", distinct.len());
        assert!(generate_name(5).split('-').count() == 2);
    }
}
