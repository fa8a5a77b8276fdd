//! What a directory needs that `object_store`'s `LocalFileSystem` does not
//! do: flushing what is written to disk, and finding the half-written
//! files of uploads whose process died. Blocking calls, for
//! `spawn_blocking`; [`crate::Objects`] decides when.

use std::path::Path;
use std::time::{Duration, SystemTime};

use chat_protocol::Id;

/// Makes `root` ready to hold objects in `folders`: creates them, and
/// flushes the directory entries naming them (and `root`) to disk once,
/// so that [`flush_to_disk`] need only flush an object's own folder.
pub fn prepare(root: &Path, folders: &[&str]) -> std::io::Result<()> {
    for folder in folders {
        std::fs::create_dir_all(root.join(folder))?;
    }
    flush_to_disk(root)
}

/// Flushes `path` (a file or a directory), and the directory entry naming
/// it, to disk.
pub fn flush_to_disk(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()?;
    match path.parent() {
        // A relative name of one component has "" for a parent: the
        // working directory, whose entry is not ours to flush.
        Some(directory) if !directory.as_os_str().is_empty() => {
            std::fs::File::open(directory)?.sync_all()
        }
        _ => Ok(()),
    }
}

/// Removes the half-written files in `folders` of `root` that nothing has
/// written to for `idle`, but those of uploads `in_progress`; answers how
/// many it removed.
pub fn remove_unfinished(
    root: &Path,
    folders: &[&str],
    idle: Duration,
    in_progress: impl Fn(Id) -> bool,
) -> usize {
    let mut removed = 0;
    for folder in folders {
        let Ok(entries) = std::fs::read_dir(root.join(folder)) else {
            continue;
        };
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().and_then(unfinished_object) else {
                continue;
            };
            let idle_for = entry
                .metadata()
                .and_then(|metadata| metadata.modified())
                .ok()
                .and_then(|modified| SystemTime::now().duration_since(modified).ok());
            if in_progress(id) || idle_for.is_none_or(|idle_for| idle_for < idle) {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(error) => {
                    let path = entry.path();
                    tracing::warn!(%error, path = %path.display(), "cannot remove an unfinished upload");
                }
            }
        }
    }
    removed
}

/// The file id of a half-written object's file name (`<id>#<digits>`, as
/// `object_store` names them until it renames them into place), or `None`
/// for any other.
fn unfinished_object(name: &str) -> Option<Id> {
    let (id, suffix) = name.split_once('#')?;
    if suffix.is_empty() || !suffix.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_objects_are_told_by_their_names() {
        assert_eq!(unfinished_object("123#1"), Some(Id(123)));
        assert_eq!(unfinished_object("123#42"), Some(Id(123)));
        for name in ["123", "123#", "123#x", "123#1a", "abc#1", "#1"] {
            assert_eq!(unfinished_object(name), None, "{name}");
        }
    }
}
