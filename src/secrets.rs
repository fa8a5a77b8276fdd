//! The JWT secret: configured, or generated once and kept in the data
//! directory so that tokens survive restarts.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use rand::RngCore;

const SECRET_FILE: &str = "jwt_secret";

/// The configured secret, else the one in `data_dir`, else a new one
/// written there (readable by the owner only).
pub fn jwt_secret(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = configured {
        if secret.len() < 32 {
            tracing::warn!("the configured JWT secret is shorter than 32 bytes; use a longer one");
        }
        return Ok(secret.as_bytes().to_vec());
    }
    let path = data_dir.join(SECRET_FILE);
    if path.exists() {
        let secret =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let secret = secret.trim();
        anyhow::ensure!(!secret.is_empty(), "{} is empty", path.display());
        return Ok(secret.as_bytes().to_vec());
    }
    let secret = random_hex(32);
    write_private(&path, &secret).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        "generated a JWT secret; set CHAT_JWT_SECRET when several processes must accept the same tokens"
    );
    Ok(secret.into_bytes())
}

/// Refuses a cluster without a configured JWT secret: each process would
/// otherwise generate its own, and a token minted by one gateway would be
/// refused by every other one.
pub fn require_for_cluster(
    redis_url: Option<&str>,
    configured: Option<&str>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        redis_url.is_none() || configured.is_some(),
        "a cluster (CHAT_REDIS_URL set) needs a JWT secret shared by every process: \
         set CHAT_JWT_SECRET (at least 32 bytes); only `chatd serve` alone generates one"
    );
    Ok(())
}

/// `url` with the password of its user information replaced, so that it
/// can be printed or logged: `redis://user:pw@host` becomes
/// `redis://user:<redacted>@host`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The user information ends at the last `@` before the path.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    // Without a colon the whole user information may be a password alone
    // (`redis://password@host`, as some clients spell it): hide it all.
    let user = rest[..at].split_once(':').map_or("", |(user, _)| user);
    format!("{scheme}://{user}:<redacted>{}", &rest[at..])
}

/// `bytes` random bytes from the OS-seeded generator, in lower-case hex.
pub fn random_hex(bytes: usize) -> String {
    let mut random = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut random);
    random.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            redact_url("redis://:hunter2@10.0.0.1:6379/0"),
            "redis://:<redacted>@10.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("rediss://app:p@ss:w@redis.internal"),
            "rediss://app:<redacted>@redis.internal"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn a_cluster_needs_a_configured_secret() {
        assert!(require_for_cluster(Some("redis://r"), None).is_err());
        assert!(require_for_cluster(Some("redis://r"), Some("s")).is_ok());
        assert!(require_for_cluster(None, None).is_ok());
    }
}
