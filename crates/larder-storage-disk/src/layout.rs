//! Where things live under the cache directory, and the format marker that guards it.
//!
//! ```text
//! <dir>/larder-disk-cache            marker: "larder disk cache\nformat 1\n"
//! <dir>/objects/ab/cd/<32 hex>       meta file of an entry (inline body or not)
//! <dir>/objects/ab/cd/<32 hex>.<id>  body file of an entry whose body is not inline
//! <dir>/tmp/                         writes in progress (emptied at open)
//! <dir>/eviction/                    saved eviction state
//! ```
//!
//! The name is the hex of the key's combined hash (primary and variance): the user tag does
//! not select an entry (the `Storage` contract), so it is stored in the meta file only.

use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use larder_storage::HashBinary;

use crate::error::DiskError;

/// The marker file's name.
pub(crate) const MARKER: &str = "larder-disk-cache";
/// The layout version the marker names.
pub(crate) const LAYOUT_VERSION: u32 = 1;

/// The paths of one cache directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) root: PathBuf,
    pub(crate) objects: PathBuf,
    pub(crate) tmp: PathBuf,
    pub(crate) eviction: PathBuf,
}

fn marker_text() -> String {
    format!("larder disk cache\nformat {LAYOUT_VERSION}\n")
}

impl Layout {
    pub(crate) fn new(root: &Path) -> Self {
        Layout {
            root: root.to_owned(),
            objects: root.join("objects"),
            tmp: root.join("tmp"),
            eviction: root.join("eviction"),
        }
    }

    /// Creates the directory or checks that it is a cache of this format, then empties
    /// `tmp/`.
    pub(crate) fn prepare(&self) -> Result<(), DiskError> {
        let io = |source| DiskError::Io {
            path: self.root.clone(),
            source,
        };
        fs::create_dir_all(&self.root).map_err(io)?;
        let marker = self.root.join(MARKER);
        match fs::read_to_string(&marker) {
            Ok(text) => {
                if text != marker_text() {
                    let found = text
                        .lines()
                        .nth(1)
                        .and_then(|l| l.strip_prefix("format "))
                        .unwrap_or("?")
                        .to_owned();
                    return Err(DiskError::OtherVersion {
                        path: self.root.clone(),
                        found,
                        expected: LAYOUT_VERSION,
                    });
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if fs::read_dir(&self.root).map_err(io)?.next().is_some() {
                    return Err(DiskError::NotACache {
                        path: self.root.clone(),
                    });
                }
                write_file(&marker, marker_text().as_bytes()).map_err(io)?;
            }
            Err(e) => return Err(io(e)),
        }
        for dir in [&self.objects, &self.tmp, &self.eviction] {
            fs::create_dir_all(dir).map_err(|source| DiskError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        for entry in fs::read_dir(&self.tmp).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let _ = fs::remove_file(&path);
        }
        Ok(())
    }

    /// The directory holding the files of `name`.
    pub(crate) fn leaf_dir(&self, name: &Name) -> PathBuf {
        let hex = name.hex();
        self.objects.join(&hex[..2]).join(&hex[2..4])
    }

    /// The meta file of `name`.
    pub(crate) fn meta_path(&self, name: &Name) -> PathBuf {
        self.leaf_dir(name).join(name.hex())
    }

    /// The body file of `name` written as entry `id`.
    pub(crate) fn body_path(&self, name: &Name, id: u64) -> PathBuf {
        self.leaf_dir(name).join(format!("{}.{id:x}", name.hex()))
    }

    /// A file in `tmp/` for write `id`.
    pub(crate) fn tmp_path(&self, id: u64, suffix: &str) -> PathBuf {
        self.tmp.join(format!("{id:x}.{suffix}"))
    }
}

fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    fs::write(path, data)
}

/// The 16-byte name an entry is filed under: the key's combined hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Name(pub(crate) HashBinary);

impl Name {
    /// 32 lowercase hex digits.
    pub(crate) fn hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(32);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        s
    }

    /// The stripe of the per-name locks.
    pub(crate) fn stripe(&self, stripes: usize) -> usize {
        usize::from(u16::from_le_bytes([self.0[0], self.0[1]])) % stripes
    }

    /// The name a file name in a leaf directory belongs to, and the body id if it is a body
    /// file; `None` for anything else.
    pub(crate) fn parse_file(file: &str) -> Option<(Name, Option<u64>)> {
        let (hex, id) = match file.split_once('.') {
            Some((hex, id)) => (hex, Some(u64::from_str_radix(id, 16).ok()?)),
            None => (file, None),
        };
        if hex.len() != 32
            || !hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some((Name(out), id))
    }
}

/// Fsyncs a directory, so renames into it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_file_names() {
        let name = Name([0xab; 16]);
        assert_eq!(name.hex().len(), 32);
        assert_eq!(Name::parse_file(&name.hex()), Some((name, None)));
        assert_eq!(
            Name::parse_file(&format!("{}.1f", name.hex())),
            Some((name, Some(0x1f)))
        );
        assert_eq!(Name::parse_file("notes.txt"), None);
        assert_eq!(Name::parse_file(&name.hex().to_uppercase()), None);
    }

    #[test]
    fn a_foreign_directory_is_refused_and_another_version_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("precious.txt"), b"mine").unwrap();
        let err = Layout::new(dir.path()).prepare().unwrap_err();
        assert!(matches!(err, DiskError::NotACache { .. }), "{err}");
        assert!(dir.path().join("precious.txt").exists());

        let other = tempfile::tempdir().unwrap();
        fs::write(other.path().join(MARKER), "larder disk cache\nformat 9\n").unwrap();
        let err = Layout::new(other.path()).prepare().unwrap_err();
        assert!(err.to_string().contains("format 9"), "{err}");
    }
}
