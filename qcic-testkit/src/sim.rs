//! For the seeded simulations: random numbers that replay, and the seeds
//! a run goes through.

/// splitmix64: small and seedable, for the seeded simulations (the same
/// seed gives the same schedule, so a failing seed replays exactly).
pub struct Rng(pub u64);

impl Rng {
    #[expect(
        clippy::should_implement_trait,
        reason = "a generator that never ends: an Iterator would only add Option"
    )]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The seeds a seeded simulation runs: the one in `{prefix}_SEED` (to
/// replay it), else the regression seeds and then 1 to `{prefix}_SCHEDULES`
/// (default `schedules`).
pub fn seeds(prefix: &str, regression: &[u64], schedules: u64) -> Vec<u64> {
    if let Ok(seed) = std::env::var(format!("{prefix}_SEED")) {
        return vec![seed.parse().expect("the seed is a number")];
    }
    let n = std::env::var(format!("{prefix}_SCHEDULES"))
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(schedules);
    regression.iter().copied().chain(1..=n).collect()
}
