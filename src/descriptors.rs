//! The process's file descriptors: the open-file limit raised as far as it
//! may go, and how many of them connections may take.
//!
//! Every connection holds a descriptor, and so does every link to Redis or
//! ScyllaDB, the SQLite files and an upload on its way to disk. A process
//! that runs out cannot accept, and cannot reconnect to its bus either. So
//! the soft limit is raised to the hard one at start (as Go's runtime does:
//! the soft limit is often 1,024, far below what a gateway holds), and each
//! listener takes connections only up to the limit less a reserve for the
//! process's own (`limits.max_open_connections` when set).

use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};

/// Descriptors kept back from connections: a tenth of the limit, at least
/// this many.
const LEAST_RESERVE: u64 = 64;

/// Raises the soft open-file limit to the hard one; says what it did.
pub fn raise_open_file_limit() {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    // An unbounded hard limit is still bounded by the kernel (nr_open), and
    // asking for infinity fails: leave such a process as it is.
    if soft >= hard || hard == RLIM_INFINITY {
        return;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => tracing::info!(from = soft, to = hard, "open-file limit raised"),
        Err(error) => tracing::warn!(%error, soft, hard, "cannot raise the open-file limit"),
    }
}

/// Most connections a listener takes at once: `configured` when it is set
/// (not 0), else what the open-file limit leaves after the reserve.
pub fn connection_cap(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) => cap_for_limit(soft),
        // Not knowing the limit, set none: accept errors are retried.
        Err(_) => usize::MAX,
    }
}

/// The connections an open-file limit of `limit` leaves room for.
fn cap_for_limit(limit: u64) -> usize {
    if limit == RLIM_INFINITY {
        return usize::MAX;
    }
    let reserve = (limit / 10).max(LEAST_RESERVE);
    usize::try_from(limit.saturating_sub(reserve))
        .unwrap_or(usize::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenth_of_the_limit_is_kept_back_and_never_less_than_the_least_reserve() {
        assert_eq!(cap_for_limit(20_000), 18_000);
        assert_eq!(cap_for_limit(1_048_576), 943_719);
        assert_eq!(cap_for_limit(1_024), 922);
        assert_eq!(cap_for_limit(100), 36);
        // A limit below the reserve still lets one connection in.
        assert_eq!(cap_for_limit(10), 1);
        assert_eq!(cap_for_limit(RLIM_INFINITY), usize::MAX);
    }

    #[test]
    fn a_configured_cap_wins() {
        assert_eq!(connection_cap(5), 5);
        assert!(connection_cap(0) >= 1);
    }
}
