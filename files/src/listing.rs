//! A pass over every stored object, a page at a time: what the sweep
//! needs to find objects that no file's metadata names. A page is listed
//! by [`crate::Objects::list_page`]; this module says what a page holds,
//! which objects belong to a file, and where a pass starts.

use chat_protocol::Id;
use chat_protocol::id::now_ms;
use object_store::path::Path;

use crate::objects::{FOLDERS, key};

/// The file whose object (bytes or thumbnail) is kept at `location`, or
/// `None` for anything else in the store.
pub(crate) fn file_of(location: &Path) -> Option<Id> {
    let mut parts = location.parts();
    let (folder, name) = (parts.next()?, parts.next()?);
    if parts.next().is_some() || !FOLDERS.contains(&folder.as_ref()) {
        return None;
    }
    name.as_ref().parse().ok()
}

/// Where a pass over every object should start when it does not know where
/// the last one stopped: at the object of a random moment since ids began,
/// so that passes cut short by restarts still reach every object in time.
pub fn random_start() -> Path {
    let latest = Id::first_at(now_ms()).0;
    key(Id(rand::random_range(0..=latest)))
}

/// What [`crate::Objects::list_page`] answers.
#[derive(Debug)]
pub struct Page {
    /// The objects kept for files (the store's other objects are skipped).
    pub objects: Vec<Listed>,
    /// The key the next page starts after, or `None` when this page ended
    /// the listing.
    pub next: Option<Path>,
}

/// A stored object, as a pass over every object sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    /// The file it belongs to (its bytes, or its thumbnail).
    pub file: Id,
    /// When it was last written, in Unix milliseconds.
    pub modified_ms: u64,
    /// Whether this process is storing it or has not recorded it yet.
    pub in_progress: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::thumbnail_key;

    #[test]
    fn only_the_objects_of_files_are_named_by_a_file() {
        assert_eq!(file_of(&key(Id(42))), Some(Id(42)));
        assert_eq!(file_of(&thumbnail_key(Id(42))), Some(Id(42)));
        for other in [
            "files",
            "files/42/x",
            "other/42",
            "files/x",
            "42",
            "files/42#1",
        ] {
            assert_eq!(file_of(&Path::from(other)), None, "{other}");
        }
    }

    #[test]
    fn a_pass_starts_at_the_object_of_some_moment_until_now() {
        for _ in 0..100 {
            let start = random_start();
            let file = file_of(&start).expect("a file's key");
            assert!(file <= Id::first_at(now_ms() + 1), "{file}");
        }
    }
}
