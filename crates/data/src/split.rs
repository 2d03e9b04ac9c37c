//! Seeded choices: the automatic validation split and `data_sample`, both by conversation, and the per-epoch
//! shuffles. The generator is SplitMix64, written out here so orders stay the same across dependency versions
//! (exact resume depends on it).

/// SplitMix64: a small, fast generator whose output is fixed by its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

/// Stream tags, so one seed gives independent sequences per purpose.
pub(crate) const STREAM_SPLIT: u64 = 0x5EED_0001;
pub(crate) const STREAM_SAMPLE_TRAIN: u64 = 0x5EED_0002;
pub(crate) const STREAM_SAMPLE_VALIDATION: u64 = 0x5EED_0003;
pub(crate) const STREAM_EPOCH: u64 = 0x5EED_0004;
pub(crate) const STREAM_AUGMENT: u64 = 0x5EED_0005;

impl Rng {
    /// A generator for `seed` and a purpose tag `stream` (and e.g. an epoch in `index`).
    pub fn new(seed: u64, stream: u64, index: u64) -> Self {
        let mut r = Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mixed = r.next_u64() ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
        Rng(mixed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// A seeded permutation of `0..n`.
pub fn permutation(n: usize, rng: &mut Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    order
}

/// Splits the groups `0..n_groups` into (train, validation): `ceil(validation_size * n_groups)` seeded groups go
/// to validation, at least one and at most `n_groups - 1`. Both lists are sorted.
pub(crate) fn split_groups(
    n_groups: usize,
    validation_size: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let n_val =
        ((validation_size * n_groups as f64).ceil() as usize).clamp(1, n_groups.saturating_sub(1));
    let order = permutation(n_groups, &mut Rng::new(seed, STREAM_SPLIT, 0));
    let mut val = order[..n_val].to_vec();
    let mut train = order[n_val..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    (train, val)
}

/// Keeps a seeded `fraction` of `groups` (at least `min(10, len)`, as H2O keeps at least 10 rows), in their order.
pub(crate) fn sample_groups(groups: &[usize], fraction: f64, seed: u64, stream: u64) -> Vec<usize> {
    let n = groups.len();
    let keep = ((fraction * n as f64).floor() as usize)
        .max(n.min(10))
        .min(n);
    let mut chosen = permutation(n, &mut Rng::new(seed, stream, 0));
    chosen.truncate(keep);
    chosen.sort_unstable();
    chosen.into_iter().map(|i| groups[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_seeded() {
        let a = permutation(50, &mut Rng::new(7, STREAM_EPOCH, 0));
        let b = permutation(50, &mut Rng::new(7, STREAM_EPOCH, 0));
        let c = permutation(50, &mut Rng::new(7, STREAM_EPOCH, 1));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn split_sizes() {
        let (train, val) = split_groups(100, 0.1, 1);
        assert_eq!((train.len(), val.len()), (90, 10));
        let (train, val) = split_groups(5, 0.01, 1);
        assert_eq!((train.len(), val.len()), (4, 1));
    }

    #[test]
    fn sampling_keeps_at_least_ten() {
        let groups: Vec<usize> = (0..100).collect();
        assert_eq!(
            sample_groups(&groups, 0.5, 3, STREAM_SAMPLE_TRAIN).len(),
            50
        );
        assert_eq!(
            sample_groups(&groups, 0.01, 3, STREAM_SAMPLE_TRAIN).len(),
            10
        );
        assert_eq!(
            sample_groups(&groups[..4], 0.1, 3, STREAM_SAMPLE_TRAIN).len(),
            4
        );
    }
}
