//! One process per data directory, when that process mints ids alone.
//!
//! Without Redis a process takes its Snowflake worker id from the
//! configuration (0 unless set), so two of them on one data directory would
//! mint ids as the same worker into the same SQLite file. Writes are
//! idempotent by id, so a colliding message would vanish silently while
//! acked. The first process therefore holds an exclusive `flock` on
//! `<data_dir>/chatd.lock` for its whole life; a second one is refused at
//! start, before it opens anything. The kernel drops the lock when the
//! process exits, however it exits, so a crash never leaves a stale lock.
//! Cluster processes lease their worker ids from Redis instead and take no
//! lock: they share the directory (or the store) on purpose.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::Context;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The lock file's name inside the data directory.
const LOCK_FILE: &str = "chatd.lock";

/// The held lock; dropping it (or exiting) releases it.
#[derive(Debug)]
pub struct DataDirLock {
    _held: Flock<File>,
}

impl DataDirLock {
    /// Takes the lock on `data_dir`, which must exist, or explains which
    /// process holds it. Never waits.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<DataDirLock> {
        let path = data_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        let mut held = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(held) => held,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                return Err(in_use(data_dir, &path, holder_pid(&mut file)));
            }
            Err((_, errno)) => {
                return Err(anyhow::Error::new(errno))
                    .with_context(|| format!("cannot lock {}", path.display()));
            }
        };
        // Only for the message a second process prints; the lock itself is
        // the flock, not this content.
        let pid = std::process::id();
        held.set_len(0)
            .and_then(|()| held.rewind())
            .and_then(|()| writeln!(*held, "{pid}"))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(DataDirLock { _held: held })
    }
}

/// The pid the holder wrote into the lock file, if it could be read.
fn holder_pid(file: &mut File) -> Option<u32> {
    let mut content = String::new();
    file.read_to_string(&mut content).ok()?;
    content.trim().parse().ok()
}

fn in_use(data_dir: &Path, lock_file: &Path, pid: Option<u32>) -> anyhow::Error {
    let holder = pid.map_or_else(
        || "another chatd process".to_owned(),
        |pid| format!("another chatd process (pid {pid})"),
    );
    anyhow::anyhow!(
        "the data directory {} is in use by {holder}, which holds {}. Two processes \
         without Redis on one directory would mint the same ids. Stop the other \
         process, or give this one another --data-dir (or CHAT_DATA_DIR)",
        data_dir.display(),
        lock_file.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let refused = DataDirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            refused.contains(&dir.path().display().to_string()),
            "{refused}"
        );
        assert!(
            refused.contains(&format!("pid {}", std::process::id())),
            "{refused}"
        );
        drop(first);
        DataDirLock::acquire(dir.path()).expect("free again once released");
    }
}
