//! Uploads in progress in this process: marks that keep the sweep away
//! from a file's objects while they are written and until their metadata
//! is, and [`Unrecorded`], the guard that removes an upload's objects if
//! it ends before its metadata is written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chat_protocol::Id;

use crate::{Objects, metrics};

/// How many marks ([`Uploading`]) each file in progress holds.
pub(crate) type Uploads = Arc<Mutex<HashMap<Id, usize>>>;

pub(crate) fn is_uploading(uploads: &Uploads, id: Id) -> bool {
    uploads
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains_key(&id)
}

/// Marks a file's objects as in progress in this process (being written,
/// or not recorded yet) for as long as it lives.
#[derive(Debug)]
pub(crate) struct Uploading {
    uploads: Uploads,
    id: Id,
}

impl Uploading {
    pub(crate) fn new(uploads: &Uploads, id: Id) -> Uploading {
        *uploads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id)
            .or_default() += 1;
        Uploading {
            uploads: Arc::clone(uploads),
            id,
        }
    }
}

impl Drop for Uploading {
    fn drop(&mut self) {
        let mut uploads = self.uploads.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(marks) = uploads.get_mut(&self.id) {
            *marks -= 1;
            if *marks == 0 {
                uploads.remove(&self.id);
            }
        }
    }
}

/// The objects of an upload whose metadata is not written yet, removed
/// when this is dropped unless [`Unrecorded::recorded`] was called; see
/// [`Objects::until_recorded`].
#[derive(Debug)]
#[must_use = "dropping it removes the upload's objects"]
pub struct Unrecorded {
    objects: Option<Objects>,
    mark: Uploading,
}

impl Unrecorded {
    pub(crate) fn new(objects: Objects, uploads: &Uploads, id: Id) -> Unrecorded {
        Unrecorded {
            objects: Some(objects),
            mark: Uploading::new(uploads, id),
        }
    }

    /// The upload's metadata is written: its objects stay.
    pub fn recorded(mut self) {
        self.objects = None;
    }
}

impl Drop for Unrecorded {
    fn drop(&mut self) {
        let Some(objects) = self.objects.take() else {
            return;
        };
        let id = self.mark.id;
        // Dropped with a request's future, so on the runtime. A removal
        // that fails leaves the objects to the sweep of leftovers.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                match objects.delete(id).await {
                    Ok(()) => metrics::LEFTOVERS
                        .with_label_values(&[metrics::leftover::UNRECORDED])
                        .inc(),
                    Err(error) => {
                        tracing::warn!(%error, file = %id, "cannot remove the objects of an unrecorded upload");
                    }
                }
            });
        }
    }
}
