//! Password hashing with argon2id.
//!
//! Hashing is deliberately expensive (~19 MiB and tens of milliseconds per
//! hash), so it runs on a few dedicated threads, never on the async
//! workers: a burst of logins queues instead of exhausting memory or CPU.
//! Dedicated threads also bound what the allocator keeps: glibc caches
//! freed blocks per thread, and hashing on tokio's large blocking pool left
//! hundreds of MiB resident after a burst of registrations (measured with
//! the load generator, docs/benchmarks.md).

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use rand::RngCore;
use tokio::sync::{OnceCell, mpsc, oneshot};

use crate::{Error, Result};

/// Hashing jobs waiting per hashing thread; callers wait beyond it.
const QUEUE_PER_THREAD: usize = 64;

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords on a few dedicated threads.
pub struct PasswordHasher {
    jobs: mpsc::Sender<Job>,
    /// A hash of a random password, verified against when the user does not
    /// exist, so that "unknown user" and "wrong password" take equally long.
    decoy: OnceCell<String>,
}

impl Default for PasswordHasher {
    fn default() -> Self {
        PasswordHasher::new()
    }
}

impl PasswordHasher {
    /// Starts one hashing thread per core, at most four.
    pub fn new() -> PasswordHasher {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        let (jobs, queue) = mpsc::channel::<Job>(threads * QUEUE_PER_THREAD);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || hash_jobs(&queue));
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password hashing thread");
            }
        }
        PasswordHasher {
            jobs,
            decoy: OnceCell::new(),
        }
    }

    /// The PHC string of an argon2id hash of `password` with a fresh salt.
    pub async fn hash(&self, password: &str) -> Result<String> {
        let password = password.to_owned();
        self.run(move || hash_now(&password)).await?
    }

    /// Whether `password` matches `phc`. With `phc = None` (unknown user) it
    /// does the same work and answers `false`.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool> {
        let known = phc.is_some();
        let phc = match phc {
            Some(phc) => phc.to_owned(),
            None => self.decoy().await?.to_owned(),
        };
        let password = password.to_owned();
        let matches = self
            .run(move || {
                let parsed = PasswordHash::new(&phc).map_err(|e| {
                    Error::Internal(format!("stored password hash is invalid: {e}"))
                })?;
                Ok::<bool, Error>(
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok(),
                )
            })
            .await??;
        Ok(known && matches)
    }

    async fn decoy(&self) -> Result<&str> {
        self.decoy
            .get_or_try_init(|| async {
                let mut random = [0u8; 32];
                rand::rng().fill_bytes(&mut random);
                let password = String::from_utf8_lossy(&random).into_owned();
                self.run(move || hash_now(&password)).await?
            })
            .await
            .map(String::as_str)
    }

    /// Runs `work` on a hashing thread.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(work());
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| Error::Unavailable("no password hashing thread is running".into()))?;
        answered
            .await
            .map_err(|_| Error::Internal("a password hashing job failed".into()))
    }
}

/// A hashing thread: runs jobs until the hasher is dropped. A job that
/// panics fails alone (its caller sees an error), the thread goes on.
fn hash_jobs(queue: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = {
            let mut queue = queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.blocking_recv()
        };
        let Some(job) = job else { return };
        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("a password hashing job panicked");
        }
    }
}

fn hash_now(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| Error::Internal(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_salts_differ() {
        let hasher = PasswordHasher::new();
        let a = hasher.hash("correct horse").await.unwrap();
        let b = hasher.hash("correct horse").await.unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "each hash has its own salt");
        assert!(hasher.verify("correct horse", Some(&a)).await.unwrap());
        assert!(!hasher.verify("wrong horse", Some(&a)).await.unwrap());
        assert!(!hasher.verify("correct horse", None).await.unwrap());
    }
}
