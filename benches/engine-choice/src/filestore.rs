//! A minimal file-per-object store, the design larder chose for its disk tier:
//! one meta file per object (header + crc32 per 64 KiB chunk, body inline when
//! <= 64 KiB), a separate body file for larger objects, every file written
//! under tmp/ and renamed into place (the meta rename is the commit point),
//! blocking `read_at` on the calling thread, crc32 verified on every read.

use std::{
    collections::HashMap,
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        RwLock,
    },
};

pub const CHUNK: usize = 64 << 10;
pub const INLINE_MAX: u64 = 64 << 10;
const MAGIC: u32 = 0x4c52_4431; // "LRD1"
// magic u32 | flags u32 | key u64 | len u64 | nchunks u32 | hdr_crc u32 | crc[nchunks] u32
const FIXED: usize = 32;

pub struct FileStore {
    root: PathBuf,
    index: RwLock<HashMap<u64, u64>>, // key -> body length
    seq: AtomicU64,
}

#[derive(Debug)]
pub enum Get {
    Hit(Vec<u8>),
    Miss,
    /// The stored bytes failed their crc32: counted, never served.
    Corrupt,
}

fn nchunks(len: u64) -> usize {
    (len as usize).div_ceil(CHUNK)
}

impl FileStore {
    fn obj_path(&self, key: u64, ext: &str) -> PathBuf {
        self.root
            .join("objects")
            .join(format!("{:02x}", key & 0xff))
            .join(format!("{key:016x}.{ext}"))
    }

    fn tmp_path(&self) -> PathBuf {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        self.root.join("tmp").join(format!("{}-{n}", std::process::id()))
    }

    /// Open (or create) a store, rebuilding the in-memory index by reading the
    /// header of every meta file (nginx's cache loader). Leftover tmp files of a
    /// crashed writer are deleted.
    pub fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root.join("objects"))?;
        let _ = fs::remove_dir_all(root.join("tmp"));
        fs::create_dir_all(root.join("tmp"))?;
        for i in 0..256 {
            fs::create_dir_all(root.join("objects").join(format!("{i:02x}")))?;
        }
        let mut index = HashMap::new();
        let mut hdr = [0u8; FIXED];
        for i in 0..256 {
            let d = root.join("objects").join(format!("{i:02x}"));
            for e in fs::read_dir(&d)? {
                let e = e?;
                let name = e.file_name();
                let name = name.to_string_lossy();
                if !name.ends_with(".m") {
                    continue;
                }
                let f = match File::open(e.path()) {
                    Ok(f) => f,
                    Err(_) => continue,
                };
                if f.read_exact_at(&mut hdr, 0).is_err() {
                    continue;
                }
                if let Some((key, len, _, _)) = parse_fixed(&hdr) {
                    index.insert(key, len);
                }
            }
        }
        Ok(Self { root: root.to_path_buf(), index: RwLock::new(index), seq: AtomicU64::new(0) })
    }

    pub fn len(&self) -> usize {
        self.index.read().unwrap().len()
    }

    /// Streamed put: `fill(offset, buf)` produces the body chunk by chunk, so
    /// the body is never whole in memory. Visible only after the meta rename.
    pub fn put_with(&self, key: u64, len: u64, mut fill: impl FnMut(u64, &mut [u8])) -> io::Result<()> {
        let n = nchunks(len);
        let mut crcs = Vec::with_capacity(n);
        let inline = len <= INLINE_MAX;
        let mut body_inline = Vec::new();
        let mut buf = vec![0u8; CHUNK];
        let body_tmp = if inline { None } else { Some(self.tmp_path()) };
        let mut body_file = match &body_tmp {
            Some(p) => Some(OpenOptions::new().write(true).create_new(true).open(p)?),
            None => None,
        };
        let mut off = 0u64;
        while off < len {
            let l = CHUNK.min((len - off) as usize);
            fill(off, &mut buf[..l]);
            crcs.push(crc32fast::hash(&buf[..l]));
            match &mut body_file {
                Some(f) => f.write_all(&buf[..l])?,
                None => body_inline.extend_from_slice(&buf[..l]),
            }
            off += l as u64;
        }
        if let (Some(_), Some(p)) = (body_file.take(), &body_tmp) {
            fs::rename(p, self.obj_path(key, "b"))?;
        }
        let mut meta = Vec::with_capacity(FIXED + 4 * n + body_inline.len());
        meta.extend_from_slice(&MAGIC.to_le_bytes());
        meta.extend_from_slice(&(inline as u32).to_le_bytes());
        meta.extend_from_slice(&key.to_le_bytes());
        meta.extend_from_slice(&len.to_le_bytes());
        meta.extend_from_slice(&(n as u32).to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&meta[..28]);
        for c in &crcs {
            h.update(&c.to_le_bytes());
        }
        meta.extend_from_slice(&h.finalize().to_le_bytes());
        for c in &crcs {
            meta.extend_from_slice(&c.to_le_bytes());
        }
        meta.extend_from_slice(&body_inline);
        let tmp = self.tmp_path();
        {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(&meta)?;
        }
        fs::rename(&tmp, self.obj_path(key, "m"))?;
        self.index.write().unwrap().insert(key, len);
        Ok(())
    }

    pub fn put(&self, key: u64, value: &[u8]) -> io::Result<()> {
        self.put_with(key, value.len() as u64, |off, buf| {
            buf.copy_from_slice(&value[off as usize..off as usize + buf.len()])
        })
    }

    /// Streamed get: `sink(offset, chunk)` sees each verified chunk. Returns
    /// Ok(None) on miss, Err(InvalidData) on a checksum or format mismatch.
    pub fn get_with(&self, key: u64, mut sink: impl FnMut(u64, &[u8])) -> io::Result<Option<u64>> {
        if !self.index.read().unwrap().contains_key(&key) {
            return Ok(None);
        }
        let meta = match File::open(self.obj_path(key, "m")) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // One read covers header + crcs + an inline body of up to 64 KiB.
        let mut buf = vec![0u8; FIXED + 4 * 16 + INLINE_MAX as usize];
        let got = read_full_at(&meta, &mut buf, 0)?;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "corrupt");
        if got < FIXED {
            return Err(bad());
        }
        let (k, len, inline, n) = parse_fixed(&buf[..FIXED]).ok_or_else(bad)?;
        if k != key || n != nchunks(len) {
            return Err(bad());
        }
        let crc_end = FIXED + 4 * n;
        if buf.len() < crc_end {
            buf.resize(crc_end, 0);
            read_exact_at(&meta, &mut buf[..crc_end], 0)?;
        } else if got < crc_end {
            return Err(bad());
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&buf[..28]);
        h.update(&buf[FIXED..crc_end]);
        if h.finalize() != u32::from_le_bytes(buf[28..32].try_into().unwrap()) {
            return Err(bad());
        }
        let crc = |i: usize| u32::from_le_bytes(buf[FIXED + 4 * i..FIXED + 4 * i + 4].try_into().unwrap());
        if inline {
            if got != crc_end + len as usize {
                return Err(bad());
            }
            let body = &buf[crc_end..crc_end + len as usize];
            for (i, c) in body.chunks(CHUNK).enumerate() {
                if crc32fast::hash(c) != crc(i) {
                    return Err(bad());
                }
            }
            for (i, c) in body.chunks(CHUNK).enumerate() {
                sink((i * CHUNK) as u64, c);
            }
            return Ok(Some(len));
        }
        drop(meta);
        let body = File::open(self.obj_path(key, "b")).map_err(|_| bad())?;
        let mut chunk = vec![0u8; CHUNK];
        let mut off = 0u64;
        let mut i = 0;
        while off < len {
            let l = CHUNK.min((len - off) as usize);
            read_exact_at(&body, &mut chunk[..l], off).map_err(|_| bad())?;
            if crc32fast::hash(&chunk[..l]) != crc(i) {
                return Err(bad());
            }
            sink(off, &chunk[..l]);
            off += l as u64;
            i += 1;
        }
        // A body file longer than recorded is a torn/mixed object too.
        if body.metadata()?.len() != len {
            return Err(bad());
        }
        Ok(Some(len))
    }

    pub fn get(&self, key: u64) -> Get {
        let mut out = Vec::new();
        match self.get_with(key, |_, c| out.extend_from_slice(c)) {
            Ok(Some(_)) => Get::Hit(out),
            Ok(None) => Get::Miss,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Get::Corrupt,
            Err(_) => Get::Miss,
        }
    }
}

fn parse_fixed(h: &[u8]) -> Option<(u64, u64, bool, usize)> {
    if u32::from_le_bytes(h[0..4].try_into().unwrap()) != MAGIC {
        return None;
    }
    let inline = u32::from_le_bytes(h[4..8].try_into().unwrap()) == 1;
    let key = u64::from_le_bytes(h[8..16].try_into().unwrap());
    let len = u64::from_le_bytes(h[16..24].try_into().unwrap());
    let n = u32::from_le_bytes(h[24..28].try_into().unwrap()) as usize;
    Some((key, len, inline, n))
}

fn read_full_at(f: &File, buf: &mut [u8], mut off: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let n = f.read_at(&mut buf[got..], off)?;
        if n == 0 {
            break;
        }
        got += n;
        off += n as u64;
    }
    Ok(got)
}

fn read_exact_at(f: &File, buf: &mut [u8], off: u64) -> io::Result<()> {
    f.read_exact_at(buf, off)
}
