//! Reading archives entry by entry, fully and with bounded memory: tar, tar.gz, tar.zst,
//! zip, and single gzip / zstd files. Verification reads every byte of every entry (the
//! decompressors check their CRCs / checksums, tar its header checksums, zip each entry's
//! CRC-32) and compares the bytes read with the sizes the headers promised, so a truncated
//! archive is found even where a decompressor would stop quietly.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tar,
    TarGz,
    TarZst,
    Zip,
    Gz,
    Zst,
}

impl Format {
    /// From the file name; None when it is not a format this monitor reads.
    pub fn detect(name: &str) -> Option<Self> {
        let n = name.to_ascii_lowercase();
        Some(if n.ends_with(".tar.gz") || n.ends_with(".tgz") {
            Self::TarGz
        } else if n.ends_with(".tar.zst") || n.ends_with(".tzst") || n.ends_with(".tar.zstd") {
            Self::TarZst
        } else if n.ends_with(".tar") {
            Self::Tar
        } else if n.ends_with(".zip") {
            Self::Zip
        } else if n.ends_with(".gz") {
            Self::Gz
        } else if n.ends_with(".zst") || n.ends_with(".zstd") {
            Self::Zst
        } else {
            return None;
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tar => "tar",
            Self::TarGz => "tar.gz",
            Self::TarZst => "tar.zst",
            Self::Zip => "zip",
            Self::Gz => "gzip",
            Self::Zst => "zstd",
        }
    }
}

pub const FORMATS: &str = "tar, tar.gz/tgz, tar.zst, zip, gz, zst";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// One member of an archive, with its content as a reader.
pub struct Entry<'a> {
    pub path: PathBuf,
    pub kind: EntryKind,
    /// Size the header promises (None for a single gzip/zstd stream).
    pub size: Option<u64>,
    pub reader: &'a mut dyn Read,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Stats {
    pub entries: u64,
    /// Uncompressed bytes read.
    pub bytes: u64,
}

const READ_BUF: usize = 256 * 1024;

/// Call `visit` for every entry, in archive order.
pub fn each_entry(
    path: &Path,
    format: Format,
    mut visit: impl FnMut(Entry<'_>) -> Result<u64, String>,
) -> Result<Stats, String> {
    let open = || File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()));
    let mut stats = Stats::default();
    match format {
        Format::Tar => tar_entries(BufReader::with_capacity(READ_BUF, open()?), &mut stats, &mut visit)?,
        Format::TarGz => {
            let r = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(READ_BUF, open()?));
            tar_entries(r, &mut stats, &mut visit)?;
        }
        Format::TarZst => {
            let r = zstd::stream::read::Decoder::new(open()?).map_err(|e| format!("zstd: {e}"))?;
            tar_entries(r, &mut stats, &mut visit)?;
        }
        Format::Gz | Format::Zst => {
            let mut r: Box<dyn Read> = if format == Format::Gz {
                Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(READ_BUF, open()?)))
            } else {
                Box::new(zstd::stream::read::Decoder::new(open()?).map_err(|e| format!("zstd: {e}"))?)
            };
            let name = path.file_stem().map(PathBuf::from).unwrap_or_default();
            stats.bytes += visit(Entry { path: name, kind: EntryKind::File, size: None, reader: &mut r })?;
            stats.entries = 1;
        }
        Format::Zip => {
            let mut zip = zip::ZipArchive::new(BufReader::with_capacity(READ_BUF, open()?))
                .map_err(|e| format!("not a readable zip archive: {e}"))?;
            for i in 0..zip.len() {
                let mut f = zip.by_index(i).map_err(|e| format!("zip entry {i}: {e}"))?;
                let kind = if f.is_dir() {
                    EntryKind::Dir
                } else if f.is_symlink() {
                    EntryKind::Symlink
                } else {
                    EntryKind::File
                };
                let path = PathBuf::from(f.name());
                let size = Some(f.size());
                stats.bytes += visit(Entry { path, kind, size, reader: &mut f })?;
                stats.entries += 1;
            }
        }
    }
    Ok(stats)
}

fn tar_entries<R: Read>(
    r: R,
    stats: &mut Stats,
    visit: &mut impl FnMut(Entry<'_>) -> Result<u64, String>,
) -> Result<(), String> {
    let mut archive = tar::Archive::new(r);
    let entries = archive.entries().map_err(|e| format!("not a readable tar archive: {e}"))?;
    for (i, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| format!("tar entry {}: {}", i + 1, plain(&e)))?;
        let path = entry.path().map(|p| p.into_owned()).unwrap_or_else(|_| PathBuf::from(format!("entry-{}", i + 1)));
        let et = entry.header().entry_type();
        let kind = if et.is_file() {
            EntryKind::File
        } else if et.is_dir() {
            EntryKind::Dir
        } else if et.is_symlink() || et.is_hard_link() {
            EntryKind::Symlink
        } else {
            EntryKind::Other
        };
        let size = entry.header().size().ok();
        stats.bytes += visit(Entry { path, kind, size, reader: &mut entry })?;
        stats.entries += 1;
    }
    Ok(())
}

/// Read an entry to its end: the bytes read, or an error naming the entry when the stream
/// fails or ends before the size its header promised.
pub fn drain(e: &mut Entry<'_>, mut sink: impl FnMut(&[u8]) -> Result<(), String>) -> Result<u64, String> {
    let mut buf = vec![0u8; 128 * 1024];
    let mut n = 0u64;
    loop {
        match e.reader.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                n += k as u64;
                sink(&buf[..k])?;
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(format!("{}: {} after {n} bytes", e.path.display(), plain(&err))),
        }
    }
    if let Some(size) = e.size
        && e.kind == EntryKind::File
        && n != size
    {
        return Err(format!("{}: archive ends after {n} of {size} bytes (truncated)", e.path.display()));
    }
    Ok(n)
}

/// Verification: read everything.
pub fn verify(path: &Path, format: Format) -> Result<Stats, String> {
    each_entry(path, format, |mut e| drain(&mut e, |_| Ok(())))
}

/// io errors from decompressors say "unexpected end of file" for a cut-off stream: say
/// what that means for a backup.
fn plain(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "unexpected end of data (truncated)".into(),
        _ => e.to_string(),
    }
}
