//! A deterministic Zipf sampler: rank `k` of `n` is drawn with probability ∝ 1/k^s.

/// xorshift64*: small, fast, reproducible; good enough to pick benchmark ids.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Cumulative distribution over ranks 1..=n, sampled by binary search.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Self {
        assert!(n > 0, "a Zipf distribution needs at least one rank");
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 1..=n {
            total += 1.0 / (k as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Self { cdf }
    }

    /// A rank in 1..=n; rank 1 is the most frequent.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.next_f64();
        let i = self.cdf.partition_point(|&c| c <= u);
        i.min(self.cdf.len() - 1) + 1
    }

    /// Probability of `rank` (1-based).
    #[cfg(test)]
    pub fn probability(&self, rank: usize) -> f64 {
        let hi = self.cdf[rank - 1];
        let lo = if rank >= 2 { self.cdf[rank - 2] } else { 0.0 };
        hi - lo
    }
}

/// `len` operations for the read/write mix: a positive id is a GET, a negative one a PATCH.
pub fn mixed_sequence(products: usize, len: usize, write_percent: u32, seed: u64) -> Vec<i64> {
    let zipf = Zipf::new(products, 0.99);
    let mut rng = Rng::new(seed);
    (0..len)
        .map(|_| {
            let id = zipf.sample(&mut rng) as i64;
            if rng.next_u64() % 100 < u64::from(write_percent) {
                -id
            } else {
                id
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..1000 {
            let x = a.next_f64();
            assert_eq!(x, b.next_f64());
            assert!((0.0..1.0).contains(&x));
        }
        // A zero seed must not get stuck at zero.
        assert_ne!(Rng::new(0).next_u64(), 0);
    }

    #[test]
    fn cdf_ends_at_one_and_probabilities_follow_the_power_law() {
        let z = Zipf::new(1000, 1.0);
        assert!((z.cdf.last().copied().unwrap_or_default() - 1.0).abs() < 1e-12);
        let ratio = z.probability(1) / z.probability(2);
        assert!((ratio - 2.0).abs() < 1e-9, "{ratio}");
        let ratio = z.probability(10) / z.probability(100);
        assert!((ratio - 10.0).abs() < 1e-9, "{ratio}");
    }

    #[test]
    fn samples_are_skewed_towards_low_ranks() {
        let n = 10_000;
        let z = Zipf::new(n, 0.99);
        let mut rng = Rng::new(7);
        let draws = 200_000;
        let mut counts = vec![0u32; n + 1];
        for _ in 0..draws {
            let r = z.sample(&mut rng);
            assert!((1..=n).contains(&r));
            counts[r] += 1;
        }
        let observed = f64::from(counts[1]) / draws as f64;
        let expected = z.probability(1);
        assert!(
            (observed - expected).abs() < 0.01,
            "{observed} vs {expected}"
        );
        let top100: u32 = counts[1..=100].iter().sum();
        // Under Zipf(0.99) over 10 000 ranks the top 1% draws about half of all requests.
        assert!(f64::from(top100) / draws as f64 > 0.45);
        assert!(counts[1] > counts[10] && counts[10] > counts[1000]);
    }

    #[test]
    fn single_rank_always_samples_it() {
        let z = Zipf::new(1, 1.0);
        let mut rng = Rng::new(3);
        assert!((0..100).all(|_| z.sample(&mut rng) == 1));
    }

    #[test]
    fn mixed_sequence_has_the_requested_write_share() {
        let seq = mixed_sequence(500, 20_000, 5, 11);
        assert_eq!(seq.len(), 20_000);
        let writes = seq.iter().filter(|&&id| id < 0).count();
        let share = writes as f64 / seq.len() as f64;
        assert!((0.04..0.06).contains(&share), "{share}");
        assert!(seq.iter().all(|id| (1..=500).contains(&id.unsigned_abs())));
        assert_eq!(seq, mixed_sequence(500, 20_000, 5, 11));
    }
}
