//! Password hashing with argon2id.
//!
//! Hashing is deliberately expensive (~19 MiB and tens of milliseconds per
//! hash), so it runs on a few dedicated threads, never on the async
//! workers: a burst of logins queues instead of exhausting memory or CPU.
//! The queue is bounded (`limits.hash_queue`): a job that finds it full is
//! refused at once with [`Error::Busy`] (503 with `Retry-After`) instead of
//! waiting without bound, so a login flood costs the flooder refusals, not
//! everyone else minutes of waiting.
//! Dedicated threads also bound what the allocator keeps: glibc caches
//! freed blocks per thread, and hashing on tokio's large blocking pool left
//! hundreds of MiB resident after a burst of registrations (measured with
//! the load generator, docs/benchmarks.md).

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{self, Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{OnceCell, mpsc, oneshot};

use crate::{Error, Result, metrics};

/// The default of `limits.hash_queue`: hashing jobs that may wait for a
/// hashing thread (besides those running); more are refused.
pub const DEFAULT_QUEUE: usize = 128;

/// What a refused hashing job tells its client to wait: about the time the
/// hashing threads need to work through a full queue of the default depth.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(2);

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
        PasswordHasher::new(DEFAULT_QUEUE)
    }
}

impl PasswordHasher {
    /// Starts one hashing thread per core, at most four, with at most
    /// `queue` jobs waiting for them (at least one).
    pub fn new(queue: usize) -> PasswordHasher {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        let (jobs, queue) = mpsc::channel::<Job>(queue.max(1));
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
        let matches = self.run(move || verify_now(&password, &phc)).await??;
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

    /// Runs `work` on a hashing thread, or refuses it with [`Error::Busy`]
    /// when the queue is full.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(work());
        });
        match self.jobs.try_send(job) {
            Ok(()) => metrics::HASH_QUEUE.inc(),
            Err(TrySendError::Full(_)) => {
                metrics::HASH_REFUSED.inc();
                return Err(Error::Busy {
                    what: "password hashing",
                    retry_after_ms: BUSY_RETRY_AFTER.as_millis() as u64,
                });
            }
            Err(TrySendError::Closed(_)) => {
                return Err(Error::Unavailable(
                    "no password hashing thread is running".into(),
                ));
            }
        }
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
        metrics::HASH_QUEUE.dec();
        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("a password hashing job panicked");
        }
    }
}

thread_local! {
    /// This hashing thread's argon2 memory, allocated once and reused:
    /// freeing and allocating ~19 MiB per hash made glibc keep hundreds of
    /// MiB resident after a burst of registrations.
    static MEMORY: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs argon2id with `params` over this thread's reusable memory.
fn argon2_into(params: Params, password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<()> {
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    MEMORY.with_borrow_mut(|memory| {
        let blocks = argon2.params().block_count();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
    })
}

/// The PHC string of an argon2id hash of `password` with a fresh salt and
/// the default parameters (OWASP's recommended minimum: 19 MiB, 2 passes).
fn hash_now(password: &str) -> Result<String> {
    let internal =
        |e: password_hash::Error| Error::Internal(format!("password hashing failed: {e}"));
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let params = Params::default();
    let mut out = vec![0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2_into(params.clone(), password.as_bytes(), &salt, &mut out)?;
    let salt = SaltString::encode_b64(&salt).map_err(internal)?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(internal)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(internal)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc`, with the parameters
/// stored in it. The comparison is constant-time (`Output`'s equality).
fn verify_now(password: &str, phc: &str) -> Result<bool> {
    let invalid =
        |e: password_hash::Error| Error::Internal(format!("stored password hash is invalid: {e}"));
    let stored = PasswordHash::new(phc).map_err(invalid)?;
    let (Some(salt), Some(expected)) = (stored.salt, stored.hash) else {
        return Err(Error::Internal(
            "stored password hash has no salt or hash".into(),
        ));
    };
    let params = Params::try_from(&stored).map_err(invalid)?;
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes).map_err(invalid)?;
    let mut out = vec![0u8; expected.len()];
    argon2_into(params, password.as_bytes(), salt, &mut out)?;
    Ok(Output::new(&out).map_err(invalid)? == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_salts_differ() {
        let hasher = PasswordHasher::default();
        let a = hasher.hash("correct horse").await.unwrap();
        let b = hasher.hash("correct horse").await.unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "each hash has its own salt");
        assert!(hasher.verify("correct horse", Some(&a)).await.unwrap());
        assert!(!hasher.verify("wrong horse", Some(&a)).await.unwrap());
        assert!(!hasher.verify("correct horse", None).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_instead_of_waiting() {
        // One waiting job at most: a burst of 40 (submitted together, far
        // faster than one hash) finds the queue full for all but a few.
        let hasher = PasswordHasher::new(1);
        let burst = (0..40).map(|i| {
            let hasher = &hasher;
            async move { hasher.hash(&format!("password {i}")).await }
        });
        let answers = futures_util::future::join_all(burst).await;
        let refused = answers
            .iter()
            .filter(|answer| matches!(answer, Err(Error::Busy { .. })))
            .count();
        let hashed = answers.iter().filter(|answer| answer.is_ok()).count();
        assert_eq!(refused + hashed, 40, "{answers:?}");
        assert!(refused >= 30, "{refused} of 40 refused");
        assert!(hashed >= 1);
        let busy = answers
            .iter()
            .find_map(|answer| answer.as_ref().err())
            .unwrap();
        assert_eq!(busy.code(), chat_protocol::ErrorCode::Unavailable);
        assert_eq!(busy.retry_after_ms(), Some(2_000));
        // Once the burst is through, hashing works again.
        assert!(hasher.hash("after the flood").await.is_ok());
    }

    #[test]
    fn hashes_are_standard_phc_strings() {
        use argon2::password_hash::PasswordVerifier;
        // Our hashes verify with the argon2 crate's own verifier, and its
        // hashes verify with ours: stored hashes stay portable.
        let ours = hash_now("portable").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"portable", &parsed)
                .is_ok()
        );
        let theirs = {
            use argon2::password_hash::PasswordHasher as _;
            let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
            Argon2::default()
                .hash_password(b"portable", &salt)
                .unwrap()
                .to_string()
        };
        assert!(verify_now("portable", &theirs).unwrap());
        assert!(!verify_now("not it", &theirs).unwrap());
        assert!(verify_now("x", "not a phc string").is_err());
    }
}
