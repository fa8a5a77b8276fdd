//! Password hashing with argon2id.
//!
//! Hashing is deliberately expensive (~19 MiB and tens of milliseconds per
//! hash), so it runs on the blocking pool and at most a few hashes run at
//! once: a burst of logins queues instead of exhausting memory or starving
//! the async workers.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use rand::RngCore;
use tokio::sync::Semaphore;

use crate::{Error, Result};

/// Hashes and verifies passwords, a bounded number at a time.
pub struct PasswordHasher {
    permits: Semaphore,
    /// A hash of a random password, verified against when the user does not
    /// exist, so that "unknown user" and "wrong password" take equally long.
    decoy: OnceLock<String>,
}

impl Default for PasswordHasher {
    fn default() -> Self {
        PasswordHasher::new()
    }
}

impl PasswordHasher {
    pub fn new() -> PasswordHasher {
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        PasswordHasher {
            permits: Semaphore::new(parallel * 2),
            decoy: OnceLock::new(),
        }
    }

    /// The PHC string of an argon2id hash of `password` with a fresh salt.
    pub async fn hash(&self, password: &str) -> Result<String> {
        let _permit = self.permit().await?;
        let password = password.to_owned();
        run_blocking(move || hash_now(&password)).await?
    }

    /// Whether `password` matches `phc`. With `phc = None` (unknown user) it
    /// does the same work and answers `false`.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool> {
        let _permit = self.permit().await?;
        let known = phc.is_some();
        let phc = match phc {
            Some(phc) => phc.to_owned(),
            None => self.decoy()?.to_owned(),
        };
        let password = password.to_owned();
        let matches = run_blocking(move || {
            let parsed = PasswordHash::new(&phc)
                .map_err(|e| Error::Internal(format!("stored password hash is invalid: {e}")))?;
            Ok::<bool, Error>(
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok(),
            )
        })
        .await??;
        Ok(known && matches)
    }

    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.permits
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("password hasher is shut down".into()))
    }

    fn decoy(&self) -> Result<&str> {
        if let Some(decoy) = self.decoy.get() {
            return Ok(decoy);
        }
        let mut random = [0u8; 32];
        rand::rng().fill_bytes(&mut random);
        let decoy = hash_now(&String::from_utf8_lossy(&random))?;
        Ok(self.decoy.get_or_init(|| decoy))
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

async fn run_blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("password task failed: {e}")))
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
