//! Checksum verification: the expected hash from a sidecar (`<file>.sha256`,
//! `<file>.sha256sum`, `<file>.b3`) or a manifest in the same folder (`SHA256SUMS`,
//! `B3SUMS`, in `sha256sum` / `b3sum` format), recomputed over the whole file.

use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    Sha256,
    Blake3,
}

impl Algo {
    pub fn as_str(self) -> &'static str {
        match self {
            Algo::Sha256 => "sha256",
            Algo::Blake3 => "blake3",
        }
    }
}

/// Where the expected hash was found.
#[derive(Debug, Clone)]
pub struct Expected {
    pub algo: Algo,
    pub hex: String,
    pub source: PathBuf,
}

/// Find the expected hash of `file`; None when there is no sidecar or manifest entry.
pub fn expected(file: &Path) -> Result<Option<Expected>, String> {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = file.parent().unwrap_or(Path::new("."));
    // (file, algorithm, is a manifest listing several files rather than a sidecar)
    let candidates = [
        (dir.join(format!("{name}.sha256")), Algo::Sha256, false),
        (dir.join(format!("{name}.sha256sum")), Algo::Sha256, false),
        (dir.join(format!("{name}.b3")), Algo::Blake3, false),
        (dir.join("SHA256SUMS"), Algo::Sha256, true),
        (dir.join("B3SUMS"), Algo::Blake3, true),
    ];
    for (path, algo, is_manifest) in candidates {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let Some(hex) = parts.next() else { continue };
            // `hex  name`, `hex *name` (binary mode), or a bare hash in a sidecar.
            let listed = parts.next().map(|n| n.trim_start_matches('*'));
            let matches = match listed {
                Some(n) => Path::new(n).file_name().is_some_and(|f| f.to_string_lossy() == name),
                None => !is_manifest,
            };
            if matches {
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("{}: '{hex}' is not a 64-digit hex hash", path.display()));
                }
                return Ok(Some(Expected { algo, hex: hex.to_ascii_lowercase(), source: path }));
            }
        }
    }
    Ok(None)
}

/// Hash the whole file with 1 MiB reads (memory stays bounded whatever its size).
pub fn hash_file(file: &Path, algo: Algo) -> std::io::Result<String> {
    let mut f = std::fs::File::open(file)?;
    let mut buf = vec![0u8; 1 << 20];
    match algo {
        Algo::Blake3 => {
            let mut h = blake3::Hasher::new();
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            Ok(h.finalize().to_hex().to_string())
        }
        Algo::Sha256 => {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            Ok(qmoi_core::human::hex(&h.finalize()))
        }
    }
}
