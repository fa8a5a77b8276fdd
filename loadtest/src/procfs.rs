//! A process's memory and CPU time as the kernel reports them:
//! `VmRSS` (resident now) and `VmHWM` (the resident high-water mark) from
//! `/proc/<pid>/status`, user + system time from `/proc/<pid>/stat`.

use serde::Serialize;

/// Resident memory of a process, in KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` of process `pid`; `None` if the process is
/// gone or the file cannot be read (not Linux, no permission).
pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&status)
}

fn parse_status(status: &str) -> Option<Memory> {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    Some(Memory {
        rss_kib: field("VmRSS")?,
        hwm_kib: field("VmHWM")?,
    })
}

/// CPU time (user + system, every thread) process `pid` has used so far,
/// in seconds; `None` if it cannot be read.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on every
/// Linux architecture this runs on).
const USER_HZ: f64 = 100.0;

fn parse_stat(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces;
    // fields after it start at 3 (state). utime and stime are 14 and 15.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// The pids of the running processes whose name (`/proc/<pid>/comm`, at
/// most 15 bytes) is `name`, in increasing order.
pub fn pids_named(name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// CPU seconds and memory summed over several processes (the processes of
/// a cluster); processes that cannot be read count nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    pub cpu_seconds: f64,
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

/// [`Totals`] of `pids` now.
pub fn totals(pids: &[u32]) -> Totals {
    let mut totals = Totals::default();
    for &pid in pids {
        totals.cpu_seconds += cpu_seconds(pid).unwrap_or(0.0);
        if let Some(memory) = memory(pid) {
            totals.rss_kib += memory.rss_kib;
            totals.hwm_kib += memory.hwm_kib;
        }
    }
    totals
}

/// KiB as MiB with one decimal, for tables.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let status = "Name:\tchatd\nVmPeak:\t  100 kB\nVmHWM:\t   2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(
            parse_status(status),
            Some(Memory {
                rss_kib: 1024,
                hwm_kib: 2048
            })
        );
        assert_eq!(parse_status("Name: x\n"), None);
    }

    #[test]
    fn parses_stat() {
        let stat = "4242 (chat d) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_stat(stat), Some(3.0));
        assert_eq!(parse_stat("garbage"), None);
        assert!(cpu_seconds(std::process::id()).is_some());
    }

    #[test]
    fn finds_and_sums_own_process() {
        let me = std::process::id();
        let comm = std::fs::read_to_string(format!("/proc/{me}/comm")).expect("own comm");
        assert!(pids_named(comm.trim_end()).contains(&me));
        assert!(pids_named("no-such-process-name").is_empty());
        let one = totals(&[me]);
        let twice = totals(&[me, me]);
        assert!(one.rss_kib > 0);
        assert!(twice.rss_kib >= 2 * one.rss_kib - 1024, "{one:?} {twice:?}");
        assert_eq!(totals(&[]), Totals::default());
    }

    #[test]
    fn reads_own_process() {
        let me = memory(std::process::id()).expect("own /proc status");
        assert!(me.rss_kib > 0 && me.hwm_kib >= me.rss_kib);
    }
}
