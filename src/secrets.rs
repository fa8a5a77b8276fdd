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
