//! Sealed files: a baseline carries an HMAC-SHA256 of its body, so an edit to the baseline
//! itself (to hide a changed binary) is detected.
//!
//! Format: one header line `QMOI-SEAL 1 hmac-sha256 <hex>` and the body after it. The key
//! comes from config (`hmac_key = "${QMOI_SECURITY_KEY}"`), or else from
//! `<data_dir>/security.key`, created with 32 random bytes and mode 0600 on first use. A key
//! that lives next to the baseline only detects tampering by someone who cannot read it;
//! give the key from the environment (a systemd credential) to do better.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Read;
use std::path::{Path, PathBuf};

const MAGIC: &str = "QMOI-SEAL 1 hmac-sha256 ";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{path}: not a sealed QMOI file (no 'QMOI-SEAL' header)")]
    NotSealed { path: PathBuf },
    #[error(
        "{path}: the HMAC does not match its content: the file was modified outside qmoi-security, or the key changed"
    )]
    Tampered { path: PathBuf },
}

/// The HMAC key.
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(***)")
    }
}

impl Key {
    /// The configured key, or the key file in `data_dir` (created when missing).
    pub fn load(configured: &str, data_dir: &Path) -> Result<Self, String> {
        if !configured.is_empty() {
            return Ok(Self(configured.as_bytes().to_vec()));
        }
        let path = data_dir.join("security.key");
        match fs_err::read_to_string(&path) {
            Ok(text) => {
                let text = text.trim();
                if text.len() < 32 {
                    return Err(format!("{}: key too short (want 64 hex characters)", path.display()));
                }
                Ok(Self(text.as_bytes().to_vec()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(&path),
            Err(e) => Err(e.to_string()),
        }
    }

    /// [`Key::load`] without creating the key file when it is missing (`--validate`): a
    /// key that exists is checked, a missing one stands in as a key of no bytes.
    pub fn load_existing(configured: &str, data_dir: &Path) -> Result<Self, String> {
        if configured.is_empty() && !data_dir.join("security.key").exists() {
            return Ok(Self(Vec::new()));
        }
        Self::load(configured, data_dir)
    }

    fn create(path: &Path) -> Result<Self, String> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut raw = [0u8; 32];
        fs_err::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut raw)).map_err(|e| e.to_string())?;
        let hex = qmoi_core::human::hex(&raw);
        if let Some(dir) = path.parent() {
            fs_err::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        f.write_all(hex.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| format!("{}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), "Created the baseline HMAC key.");
        Ok(Self(hex.into_bytes()))
    }

    /// Raw bytes for keyed hashes of secrets (shadow lines): BLAKE3 wants 32 bytes.
    pub fn derive32(&self, context: &str) -> [u8; 32] {
        blake3::derive_key(context, &self.0)
    }

    fn mac(&self, body: &[u8]) -> String {
        // HMAC accepts keys of any length: cannot fail.
        let mut m = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        m.update(body);
        qmoi_core::human::hex(&m.finalize().into_bytes())
    }
}

/// Write `body` sealed, atomically (temp file, fsync, rename).
pub fn write(path: &Path, key: &Key, body: &[u8]) -> Result<(), String> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs_err::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let header = format!("{MAGIC}{}\n", key.mac(body));
    qmoi_core::report::write_atomic_with(path, |w| {
        w.write_all(header.as_bytes())?;
        w.write_all(body)
    })
    .map_err(|e| match e {
        qmoi_core::report::WriteError::Io { source, .. } => format!("cannot write {}: {source}", path.display()),
        other => other.to_string(),
    })
}

/// Read a sealed file and check its HMAC; `Ok(None)` when it does not exist.
pub fn read(path: &Path, key: &Key) -> Result<Option<Vec<u8>>, SealError> {
    let data = match fs_err::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
        return Err(SealError::NotSealed { path: path.to_path_buf() });
    };
    let header = std::str::from_utf8(&data[..nl]).unwrap_or("");
    let Some(mac) = header.strip_prefix(MAGIC) else {
        return Err(SealError::NotSealed { path: path.to_path_buf() });
    };
    let body = &data[nl + 1..];
    if !constant_time_eq(mac.as_bytes(), key.mac(body).as_bytes()) {
        return Err(SealError::Tampered { path: path.to_path_buf() });
    }
    Ok(Some(body.to_vec()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_roundtrip_and_tamper_detection() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let key = Key::load("", dir.path())?;
        let again = Key::load("", dir.path())?;
        assert_eq!(key.0, again.0, "the key file is reused");
        let path = dir.path().join("b.qmb");
        write(&path, &key, b"{\"a\":1}")?;
        assert_eq!(read(&path, &key)?.as_deref(), Some(&b"{\"a\":1}"[..]));
        let mut text = std::fs::read(&path)?;
        let last = text.len() - 2;
        text[last] = b'2';
        std::fs::write(&path, &text)?;
        assert!(matches!(read(&path, &key), Err(SealError::Tampered { .. })));
        let other = Key::load("another key", dir.path())?;
        write(&path, &key, b"x")?;
        assert!(matches!(read(&path, &other), Err(SealError::Tampered { .. })));
        assert!(read(&dir.path().join("none"), &key)?.is_none());
        Ok(())
    }
}
