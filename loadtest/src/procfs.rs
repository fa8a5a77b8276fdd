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

/// A process's CPU time so far and its memory now; a process that cannot
/// be read (gone, or not Linux) counts nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Usage {
    /// [`Usage`] of process `pid` now.
    pub fn of(pid: u32) -> Usage {
        let memory = memory(pid);
        Usage {
            cpu_seconds: cpu_seconds(pid).unwrap_or(0.0),
            rss_kib: memory.map_or(0, |m| m.rss_kib),
            hwm_kib: memory.map_or(0, |m| m.hwm_kib),
        }
    }

    /// Several processes' usage summed (the processes of a cluster).
    pub fn sum(usages: &[Usage]) -> Usage {
        usages.iter().fold(Usage::default(), |total, u| Usage {
            cpu_seconds: total.cpu_seconds + u.cpu_seconds,
            rss_kib: total.rss_kib + u.rss_kib,
            hwm_kib: total.hwm_kib + u.hwm_kib,
        })
    }
}

/// [`Usage`] of each of `pids` now, in the same order.
pub fn usage_of(pids: &[u32]) -> Vec<Usage> {
    pids.iter().map(|&pid| Usage::of(pid)).collect()
}

/// What process `pid` is called in a report: its program's file name and,
/// when it has one, its first argument if that is not an option (`chatd
/// gateway`, `chatd router`), so that the roles of one binary tell apart;
/// its `comm` if the command line cannot be read.
pub fn label(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .and_then(|cmdline| parse_cmdline(&cmdline))
        .or_else(|| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .ok()
                .map(|comm| comm.trim_end().to_string())
        })
        .unwrap_or_else(|| format!("pid {pid}"))
}

fn parse_cmdline(cmdline: &[u8]) -> Option<String> {
    let mut args = cmdline
        .split(|byte| *byte == 0)
        .filter(|arg| !arg.is_empty())
        .map(String::from_utf8_lossy);
    let program = args.next()?;
    let file_name = program.rsplit('/').next().unwrap_or_default();
    // A server that rewrites its title (redis-server shows `redis-server
    // *:6379`) leaves one argument with spaces: its first word is the name.
    let name = file_name.split(' ').next().unwrap_or_default();
    Some(match args.next() {
        Some(first) if !first.starts_with('-') => format!("{name} {first}"),
        _ => name.to_string(),
    })
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
        let one = Usage::of(me);
        let twice = Usage::sum(&usage_of(&[me, me]));
        assert!(one.rss_kib > 0);
        assert!(twice.rss_kib >= 2 * one.rss_kib - 1024, "{one:?} {twice:?}");
        assert_eq!(Usage::sum(&[]), Usage::default());
        assert_eq!(Usage::of(u32::MAX), Usage::default());
    }

    #[test]
    fn labels_a_process_by_program_and_role() {
        let cases: [(&[u8], &str); 4] = [
            (b"/usr/local/bin/chatd\0gateway\0", "chatd gateway"),
            (b"target/release/chatd\0--config\0x.toml\0", "chatd"),
            // redis-server rewrites its title into one argument.
            (b"redis-server *:18500\0\0\0", "redis-server"),
            (b"/opt/chat server/chatd\0router\0", "chatd router"),
        ];
        for (cmdline, label) in cases {
            assert_eq!(parse_cmdline(cmdline).as_deref(), Some(label));
        }
        assert_eq!(parse_cmdline(b""), None);
        let me = std::process::id();
        let comm = std::fs::read_to_string(format!("/proc/{me}/comm")).expect("own comm");
        assert!(label(me).starts_with(comm.trim_end()), "{}", label(me));
    }

    #[test]
    fn reads_own_process() {
        let me = memory(std::process::id()).expect("own /proc status");
        assert!(me.rss_kib > 0 && me.hwm_kib >= me.rss_kib);
    }
}
