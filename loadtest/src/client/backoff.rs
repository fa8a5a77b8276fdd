//! When to try reconnecting: exponential backoff with full jitter, so that
//! many clients cut off by one restart do not all come back at the same
//! instant, and no wait at all after a 1012 ("server restarting": another
//! server, or the same one restarted, is expected to take the connection).

use std::time::Duration;

use rand::Rng;

/// The first retry waits up to this long.
const BASE: Duration = Duration::from_millis(250);
/// No retry waits longer than this.
const CAP: Duration = Duration::from_secs(10);

/// The state of one run of reconnection attempts.
#[derive(Debug, Default)]
pub struct Backoff {
    /// Failed attempts since the last success.
    failures: u32,
    /// Whether the next attempt goes at once.
    at_once: bool,
}

impl Backoff {
    /// The connection worked: the next loss starts over.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.at_once = false;
    }

    /// The next attempt goes without waiting: the first connection, or
    /// after the server said it is restarting (1012).
    pub fn go_at_once(&mut self) {
        self.at_once = true;
    }

    /// How long to wait before the next attempt, counting it as made.
    pub fn next_delay(&mut self) -> Duration {
        if std::mem::take(&mut self.at_once) {
            return Duration::ZERO;
        }
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        rand::rng().random_range(Duration::ZERO..=ceiling)
    }

    /// The longest the next wait may be: BASE doubled per failure, capped.
    fn ceiling(&self) -> Duration {
        BASE.saturating_mul(1 << self.failures.min(16)).min(CAP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_to_the_cap_with_jitter_below_the_ceiling() {
        let mut backoff = Backoff::default();
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            let ceiling = backoff.ceiling();
            assert!(backoff.next_delay() <= ceiling);
            ceilings.push(ceiling);
        }
        assert_eq!(ceilings[0], BASE);
        assert_eq!(ceilings[1], BASE * 2);
        assert!(ceilings.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(ceilings[9], CAP);
    }

    #[test]
    fn a_restart_goes_at_once_then_backs_off_again() {
        let mut backoff = Backoff::default();
        backoff.next_delay();
        backoff.next_delay();
        backoff.go_at_once();
        assert_eq!(backoff.next_delay(), Duration::ZERO);
        assert_eq!(backoff.ceiling(), BASE * 4, "failures still count");
        backoff.succeeded();
        assert_eq!(backoff.ceiling(), BASE);
    }
}
