//! engine-choice: foyer (HybridCache, block engine on a directory) against a
//! minimal file-per-object store, for larder issue 15. See README.md.

mod filestore;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use bytes::Bytes;
use filestore::{FileStore, Get};
use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder, HybridCachePolicy, Load,
    RecoverMode,
};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

// ---------------------------------------------------------------- values

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Bytes of the value of `key` at `off..off+buf.len()` (off and len multiples of 8).
fn fill(key: u64, off: u64, buf: &mut [u8]) {
    let base = off / 8;
    let seed = splitmix(key);
    for (i, w) in buf.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&splitmix(seed ^ (base + i as u64)).to_le_bytes());
    }
}

fn value(key: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill(key, 0, &mut v);
    v
}

fn check(key: u64, v: &[u8], len: usize) -> bool {
    v.len() == len && v == value(key, len).as_slice()
}

/// Crash-test value length, derived from the key.
fn crash_len(key: u64) -> usize {
    [KIB, 4 * KIB, 64 * KIB, 200 * KIB, MIB][(splitmix(key ^ 77) % 5) as usize]
}

fn vm_hwm_mib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

fn fresh_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(std::env::var("EC_TMP").unwrap_or_else(|_| "/tmp/engine-choice".into())).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ---------------------------------------------------------------- foyer

type Foyer = HybridCache<u64, Bytes>;

#[derive(Clone, Copy)]
struct FoyerCfg {
    capacity: usize,
    block: usize,
    buffer_pool: usize,
}

impl FoyerCfg {
    fn bench() -> Self {
        // Defaults of foyer 0.22.6 except the device capacity.
        Self { capacity: 4 << 30, block: 16 * MIB, buffer_pool: 16 * MIB }
    }
}

async fn open_foyer(dir: &Path, cfg: FoyerCfg) -> Foyer {
    let device = FsDeviceBuilder::new(dir).with_capacity(cfg.capacity).build().unwrap();
    HybridCacheBuilder::new()
        .with_policy(HybridCachePolicy::WriteOnInsertion)
        // Smallest memory tier: one entry (default weighter counts entries). Puts go
        // through `storage_writer` (disk only) and gets through `storage().load`,
        // so every get below is served by the block engine.
        .memory(1)
        .storage()
        .with_engine_config(
            BlockEngineConfig::new(device)
                .with_block_size(cfg.block)
                .with_buffer_pool_size(cfg.buffer_pool)
                .with_submit_queue_size_threshold(cfg.buffer_pool.max(16 * MIB) * 2),
        )
        .with_recover_mode(RecoverMode::Quiet)
        .build()
        .await
        .unwrap()
}

fn foyer_put(c: &Foyer, key: u64, v: Bytes) {
    let _ = c.storage_writer(key).force().insert(v);
}

async fn foyer_get(c: &Foyer, key: u64) -> Option<Bytes> {
    match c.storage().load(&key).await {
        Ok(Load::Entry { value, .. }) => Some(value),
        Ok(Load::Piece { piece, .. }) => Some(piece.value().clone()),
        _ => None,
    }
}

// ---------------------------------------------------------------- throughput

struct Row {
    engine: &'static str,
    size: usize,
    puts: usize,
    put_s: f64,
    stored: usize,
    gets: usize,
    get_s: f64,
    get_hits: usize,
    /// file store only: per-put latency p50 / p99 in microseconds
    put_lat: Option<(f64, f64)>,
}

fn fmt_size(s: usize) -> String {
    if s >= MIB {
        format!("{} MiB", s / MIB)
    } else {
        format!("{} KiB", s / KIB)
    }
}

fn bench_count(size: usize) -> usize {
    (256 * MIB / size).clamp(256, 20_000)
}

const GET_SECS: f64 = 2.0;

fn bench_file(size: usize) -> Row {
    let dir = fresh_dir(&format!("tp-file-{size}"));
    let s = FileStore::open(&dir).unwrap();
    let n = bench_count(size);
    let vals: Vec<Vec<u8>> = (0..8).map(|k| value(k, size)).collect();
    let mut lat = Vec::with_capacity(n);
    let t = Instant::now();
    for k in 0..n as u64 {
        let t1 = Instant::now();
        s.put(k, &vals[(k % 8) as usize]).unwrap();
        lat.push(t1.elapsed().as_secs_f64() * 1e6);
    }
    let put_s = t.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let put_lat = Some((lat[n / 2], lat[n * 99 / 100]));
    let stored = s.len();
    // warm the page cache, then a time-bounded loop of gets
    let (gets, get_s, hits) = get_loop(n, |k| match s.get(k) {
        Get::Hit(v) => v.len() == size && v[..8] == vals[(k % 8) as usize][..8],
        _ => false,
    });
    let _ = std::fs::remove_dir_all(&dir);
    Row { engine: "file-per-object", size, puts: n, put_s, stored, gets, get_s, get_hits: hits, put_lat }
}

fn get_loop(n: usize, mut get: impl FnMut(u64) -> bool) -> (usize, f64, usize) {
    for k in 0..n as u64 {
        get(k);
    }
    let t = Instant::now();
    let mut gets = 0;
    let mut hits = 0;
    let mut x = 1u64;
    while t.elapsed().as_secs_f64() < GET_SECS {
        for _ in 0..64 {
            x = splitmix(x);
            if get(x % n as u64) {
                hits += 1;
            }
            gets += 1;
        }
    }
    (gets, t.elapsed().as_secs_f64(), hits)
}

/// `paced`: after every 8 MiB put (half the default 16 MiB flush buffer) wait for the
/// flusher, so nothing is dropped; unpaced: put as fast as the caller can and count
/// what foyer kept (it drops entries when its flush buffer is full).
async fn bench_foyer(size: usize, paced: bool) -> Row {
    let dir = fresh_dir(&format!("tp-foyer-{size}"));
    let c = open_foyer(&dir, FoyerCfg::bench()).await;
    let n = bench_count(size);
    let vals: Vec<Bytes> = (0..8).map(|k| Bytes::from(value(k, size))).collect();
    let t = Instant::now();
    let mut since = 0;
    for k in 0..n as u64 {
        foyer_put(&c, k, vals[(k % 8) as usize].clone());
        since += (size + 4095 + 64) / 4096 * 4096; // foyer aligns each entry to 4 KiB
        if paced && since >= 8 * MIB {
            c.storage().wait().await;
            since = 0;
        }
    }
    c.storage().wait().await; // all enqueued entries flushed (or dropped)
    let put_s = t.elapsed().as_secs_f64();
    let keys: Vec<u64> = (0..n as u64).filter(|k| c.storage().may_contains(k)).collect();
    let stored = keys.len();
    for &k in &keys {
        let _ = foyer_get(&c, k).await;
    }
    let t = Instant::now();
    let (mut gets, mut hits, mut x) = (0usize, 0usize, 1u64);
    while !keys.is_empty() && t.elapsed().as_secs_f64() < GET_SECS {
        for _ in 0..64 {
            x = splitmix(x);
            let k = keys[(x % keys.len() as u64) as usize];
            if let Some(v) = foyer_get(&c, k).await {
                if v.len() == size && v[..8] == vals[(k % 8) as usize][..8] {
                    hits += 1;
                }
            }
            gets += 1;
        }
    }
    let get_s = t.elapsed().as_secs_f64();
    c.close().await.unwrap();
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
    let engine = if paced { "foyer 0.22.6 (paced)" } else { "foyer 0.22.6 (unpaced)" };
    Row { engine, size, puts: n, put_s, stored, gets, get_s, get_hits: hits, put_lat: None }
}

// ---------------------------------------------------------------- reopen

const REOPEN_N: u64 = 100_000;

fn reopen_file() -> (f64, usize) {
    let dir = fresh_dir("reopen-file");
    {
        let s = FileStore::open(&dir).unwrap();
        let v = value(1, KIB);
        for k in 0..REOPEN_N {
            s.put(k, &v).unwrap();
        }
    }
    let t = Instant::now();
    let s = FileStore::open(&dir).unwrap();
    let el = t.elapsed().as_secs_f64();
    let n = s.len();
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
    (el, n)
}

async fn reopen_foyer() -> (f64, usize, usize) {
    let dir = fresh_dir("reopen-foyer");
    let v = Bytes::from(value(1, KIB));
    let mut put = 0;
    {
        let c = open_foyer(&dir, FoyerCfg::bench()).await;
        // paced so that no put is dropped by the flush-buffer limit
        for k in 0..REOPEN_N {
            foyer_put(&c, k, v.clone());
            put += 1;
            if k % 2000 == 1999 {
                c.storage().wait().await;
            }
        }
        c.storage().wait().await;
        c.close().await.unwrap();
    }
    let t = Instant::now();
    let c = open_foyer(&dir, FoyerCfg::bench()).await;
    let el = t.elapsed().as_secs_f64();
    let n = (0..REOPEN_N).filter(|k| c.storage().may_contains(k)).count();
    c.close().await.unwrap();
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
    (el, n, put)
}

// ---------------------------------------------------------------- max entry size (child processes)

/// Child: put one value of `mib` MiB into foyer with `mode` config, then get it back.
async fn foyer_max_child(mib: usize, mode: &str) {
    let size = mib * MIB;
    let cfg = match mode {
        "default" => FoyerCfg { capacity: 4 << 30, block: 16 * MIB, buffer_pool: 16 * MIB },
        // block and flush buffer raised to fit the entry (both are limits)
        _ => {
            let b = size + 4 * MIB;
            FoyerCfg { capacity: (4 * b).max(256 * MIB), block: b, buffer_pool: b }
        }
    };
    let dir = fresh_dir(&format!("max-foyer-{mode}-{mib}"));
    let t = Instant::now();
    let c = open_foyer(&dir, cfg).await;
    let open_s = t.elapsed().as_secs_f64();
    let hwm_open = vm_hwm_mib();
    let v = Bytes::from(value(7, size));
    let t = Instant::now();
    foyer_put(&c, 7, v);
    c.storage().wait().await;
    let put_s = t.elapsed().as_secs_f64();
    let got = foyer_get(&c, 7).await;
    let ok = got.as_ref().map(|g| check(7, g, size));
    let res = match ok {
        Some(true) => "stored+read OK".to_string(),
        Some(false) => "CORRUPT".to_string(),
        None => "not stored (silently dropped; insert returned normally)".to_string(),
    };
    drop(got);
    c.close().await.unwrap();
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "RESULT foyer {mode} block={}MiB buffer={}MiB value={mib}MiB: {res}; open {open_s:.2}s put+flush {put_s:.2}s; peak RSS {} MiB (after open {} MiB)",
        cfg.block / MIB,
        cfg.buffer_pool / MIB,
        vm_hwm_mib(),
        hwm_open
    );
}

/// Child: streamed put of `mib` MiB into the file store, streamed verified get.
fn file_max_child(mib: usize) {
    let size = (mib * MIB) as u64;
    let dir = fresh_dir(&format!("max-file-{mib}"));
    let s = FileStore::open(&dir).unwrap();
    let t = Instant::now();
    s.put_with(7, size, |off, buf| fill(7, off, buf)).unwrap();
    let put_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut exp = vec![0u8; filestore::CHUNK];
    let mut good = true;
    let r = s.get_with(7, |off, c| {
        fill(7, off, &mut exp[..c.len()]);
        good &= exp[..c.len()] == *c;
    });
    let get_s = t.elapsed().as_secs_f64();
    let res = match r {
        Ok(Some(l)) if l == size && good => "stored+read OK",
        Ok(Some(_)) => "CORRUPT",
        Ok(None) => "miss",
        Err(_) => "checksum error",
    };
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "RESULT file-per-object value={mib}MiB: {res}; streamed put {put_s:.2}s, streamed get {get_s:.2}s; peak RSS {} MiB",
        vm_hwm_mib()
    );
}

fn run_child(args: &[&str]) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    match s.lines().find(|l| l.starts_with("RESULT")) {
        Some(l) => l.trim_start_matches("RESULT ").to_string(),
        None => format!("{args:?}: child failed: {}", out.status),
    }
}

// ---------------------------------------------------------------- crash test

const CRASH_ROUNDS: u64 = 6;
const CRASH_CAP: u64 = 1_000_000; // keys per round r: r*CAP .. r*CAP+CAP

fn progress(n: u64) {
    use std::io::Write;
    if n % 16 == 0 {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{n}");
        let _ = o.flush();
    }
}

/// Child: puts keys round*CAP.. until killed.
async fn crash_child(engine: &str, dir: &Path, round: u64) {
    let base = round * CRASH_CAP;
    match engine {
        "file" => {
            let s = FileStore::open(dir).unwrap();
            println!("ready");
            for k in base..base + CRASH_CAP {
                s.put_with(k, crash_len(k) as u64, |off, buf| fill(k, off, buf)).unwrap();
                progress(k - base + 1);
            }
        }
        _ => {
            let c = open_foyer(dir, FoyerCfg::bench()).await;
            println!("ready");
            for k in base..base + CRASH_CAP {
                foyer_put(&c, k, Bytes::from(value(k, crash_len(k))));
                progress(k - base + 1);
                if k % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }
    }
}

#[derive(Default, Debug)]
struct CrashTally {
    rounds: u64,
    puts_returned: u64,
    present_after_last_reopen: u64,
    verified_ok: u64,
    corrupt_served: u64,
    detected_corrupt: u64,
    max_reopen_s: f64,
}

/// Returns how many puts had returned (to a multiple of 16) when the child was killed.
fn spawn_and_kill(engine: &str, dir: &Path, round: u64, after: Duration) -> u64 {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash-child", engine, dir.to_str().unwrap(), &round.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut r = std::io::BufReader::new(child.stdout.take().unwrap());
    r.read_line(&mut line).unwrap();
    let reader = std::thread::spawn(move || {
        let mut last = 0;
        for l in r.lines().map_while(Result::ok) {
            last = l.trim().parse().unwrap_or(last);
        }
        last
    });
    std::thread::sleep(after);
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    reader.join().unwrap()
}

fn crash_file() -> CrashTally {
    let dir = fresh_dir("crash-file");
    let mut t = CrashTally::default();
    for round in 0..CRASH_ROUNDS {
        t.puts_returned += spawn_and_kill("file", &dir, round, Duration::from_millis(300 + 170 * round));
        let last = round + 1 == CRASH_ROUNDS;
        let st = Instant::now();
        let s = FileStore::open(&dir).unwrap();
        t.max_reopen_s = t.max_reopen_s.max(st.elapsed().as_secs_f64());
        for r in 0..=round {
            let base = r * CRASH_CAP;
            let mut misses = 0;
            for k in base..base + CRASH_CAP {
                match s.get(k) {
                    Get::Hit(v) => {
                        misses = 0;
                        t.present_after_last_reopen += last as u64;
                        if check(k, &v, crash_len(k)) {
                            t.verified_ok += 1
                        } else {
                            t.corrupt_served += 1
                        }
                    }
                    Get::Corrupt => t.detected_corrupt += 1,
                    Get::Miss => {
                        misses += 1;
                        if misses > 5000 {
                            break;
                        }
                    }
                }
            }
        }
        t.rounds += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    t
}

async fn crash_foyer() -> CrashTally {
    let dir = fresh_dir("crash-foyer");
    let mut t = CrashTally::default();
    for round in 0..CRASH_ROUNDS {
        t.puts_returned += spawn_and_kill("foyer", &dir, round, Duration::from_millis(300 + 170 * round));
        let last = round + 1 == CRASH_ROUNDS;
        let st = Instant::now();
        let c = open_foyer(&dir, FoyerCfg::bench()).await;
        t.max_reopen_s = t.max_reopen_s.max(st.elapsed().as_secs_f64());
        for r in 0..=round {
            let base = r * CRASH_CAP;
            let mut misses = 0;
            for k in base..base + CRASH_CAP {
                if !c.storage().may_contains(&k) {
                    misses += 1;
                    if misses > 5000 {
                        break;
                    }
                    continue;
                }
                misses = 0;
                match c.storage().load(&k).await {
                    Ok(Load::Entry { value, .. }) => {
                        t.present_after_last_reopen += last as u64;
                        if check(k, &value, crash_len(k)) {
                            t.verified_ok += 1
                        } else {
                            t.corrupt_served += 1
                        }
                    }
                    Ok(Load::Piece { piece, .. }) => {
                        t.present_after_last_reopen += last as u64;
                        if check(k, piece.value(), crash_len(k)) {
                            t.verified_ok += 1
                        } else {
                            t.corrupt_served += 1
                        }
                    }
                    // index said present, load said miss: checksum/format mismatch detected
                    Ok(Load::Miss) => t.detected_corrupt += 1,
                    _ => {}
                }
            }
        }
        c.close().await.unwrap();
        drop(c);
        t.rounds += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    t
}

// ---------------------------------------------------------------- bit flips

const FLIP_N: u64 = 400;
const FLIPS: usize = 50;

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            all_files(&p, out)
        } else {
            out.push(p)
        }
    }
}

/// Flip one byte in each of `FLIPS` randomly chosen non-zero 4 KiB pages of the files.
fn flip_bytes(files: &[PathBuf], seed: u64) {
    use std::os::unix::fs::FileExt;
    let mut pages = vec![];
    for (i, f) in files.iter().enumerate() {
        let data = std::fs::read(f).unwrap();
        for (j, pg) in data.chunks(4096).enumerate() {
            if pg.iter().any(|&b| b != 0) {
                pages.push((i, j as u64 * 4096, pg.len() as u64));
            }
        }
    }
    let mut x = seed;
    for _ in 0..FLIPS {
        x = splitmix(x);
        let (i, off, len) = pages[(x % pages.len() as u64) as usize];
        let at = off + splitmix(x) % len;
        let f = std::fs::OpenOptions::new().read(true).write(true).open(&files[i]).unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, at).unwrap();
        b[0] ^= 0x5a;
        f.write_all_at(&b, at).unwrap();
    }
}

#[derive(Debug, Default)]
#[allow(dead_code)] // read through Debug
struct FlipTally {
    stored: u64,
    intact_served: u64,
    corrupt_served: u64,
    miss_or_detected: u64,
}

fn flip_file() -> FlipTally {
    let dir = fresh_dir("flip-file");
    {
        let s = FileStore::open(&dir).unwrap();
        for k in 0..FLIP_N {
            s.put(k, &value(k, crash_len(k))).unwrap();
        }
    }
    let mut files = vec![];
    all_files(&dir.join("objects"), &mut files);
    flip_bytes(&files, 42);
    let s = FileStore::open(&dir).unwrap();
    let mut t = FlipTally { stored: FLIP_N, ..Default::default() };
    for k in 0..FLIP_N {
        match s.get(k) {
            Get::Hit(v) if check(k, &v, crash_len(k)) => t.intact_served += 1,
            Get::Hit(_) => t.corrupt_served += 1,
            _ => t.miss_or_detected += 1,
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    t
}

async fn flip_foyer() -> FlipTally {
    let dir = fresh_dir("flip-foyer");
    {
        let c = open_foyer(&dir, FoyerCfg::bench()).await;
        for k in 0..FLIP_N {
            foyer_put(&c, k, Bytes::from(value(k, crash_len(k))));
            if k % 16 == 15 {
                c.storage().wait().await;
            }
        }
        c.storage().wait().await;
        c.close().await.unwrap();
    }
    let mut files = vec![];
    all_files(&dir, &mut files);
    flip_bytes(&files, 42);
    let c = open_foyer(&dir, FoyerCfg::bench()).await;
    let mut t = FlipTally { stored: FLIP_N, ..Default::default() };
    for k in 0..FLIP_N {
        match foyer_get(&c, k).await {
            Some(v) if check(k, &v, crash_len(k)) => t.intact_served += 1,
            Some(_) => t.corrupt_served += 1,
            None => t.miss_or_detected += 1,
        }
    }
    c.close().await.unwrap();
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
    t
}

// ---------------------------------------------------------------- read while writing

/// The file-per-object layout lets a reader follow a body that is still being
/// written: the writer appends 64 KiB chunks to its tmp file and publishes the
/// length and chunk crc32s in memory (what a `Storage` keeps for an in-progress
/// miss); a reader opens the same file and `read_at`s each chunk once published.
/// The writer is paced (1 ms per MiB) as a body arriving from an origin would be.
fn stream_demo(mib: usize) -> String {
    use std::{
        io::Write,
        os::unix::fs::FileExt,
        sync::{
            atomic::{AtomicU64, Ordering},
            Arc, Mutex,
        },
    };
    let dir = fresh_dir("stream");
    let path = dir.join("in-progress");
    let len = (mib * MIB) as u64;
    let written = Arc::new(AtomicU64::new(0));
    let crcs = Arc::new(Mutex::new(Vec::<u32>::new()));
    let mut f = std::fs::File::create(&path).unwrap();
    let t0 = Instant::now();
    let (w2, c2) = (written.clone(), crcs.clone());
    let writer = std::thread::spawn(move || {
        let mut buf = vec![0u8; filestore::CHUNK];
        let mut off = 0u64;
        while off < len {
            fill(9, off, &mut buf);
            f.write_all(&buf).unwrap();
            c2.lock().unwrap().push(crc32fast::hash(&buf));
            off += buf.len() as u64;
            w2.store(off, Ordering::Release);
            if off % MIB as u64 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        t0.elapsed()
    });
    let r = std::fs::File::open(&path).unwrap();
    let mut buf = vec![0u8; filestore::CHUNK];
    let mut exp = vec![0u8; filestore::CHUNK];
    let (mut off, mut i, mut ok, mut first) = (0u64, 0usize, true, None);
    while off < len {
        if written.load(Ordering::Acquire) < off + buf.len() as u64 {
            std::thread::yield_now();
            continue;
        }
        r.read_exact_at(&mut buf, off).unwrap();
        ok &= crc32fast::hash(&buf) == crcs.lock().unwrap()[i];
        fill(9, off, &mut exp);
        ok &= buf == exp;
        first.get_or_insert(t0.elapsed());
        off += buf.len() as u64;
        i += 1;
    }
    let reader_done = t0.elapsed();
    let writer_done = writer.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    format!(
        "{mib} MiB body: reader's first verified chunk at {:.1} ms, writer done at {:.0} ms, reader done at {:.0} ms, all bytes verified: {ok}",
        first.unwrap().as_secs_f64() * 1e3,
        writer_done.as_secs_f64() * 1e3,
        reader_done.as_secs_f64() * 1e3
    )
}

// ---------------------------------------------------------------- main

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    match args.get(1).map(|s| s.as_str()) {
        Some("crash-child") => rt.block_on(crash_child(&args[2], Path::new(&args[3]), args[4].parse().unwrap())),
        Some("foyer-max") => rt.block_on(foyer_max_child(args[2].parse().unwrap(), &args[3])),
        Some("file-max") => file_max_child(args[2].parse().unwrap()),
        Some(part) => run(&rt, part),
        None => run(&rt, "all"),
    }
}

fn run(rt: &tokio::runtime::Runtime, part: &str) {
    let all = part == "all";
    println!("# engine-choice: foyer 0.22.6 vs file-per-object ({} cores)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
    if all || part == "throughput" {
        println!("\n## Throughput (1 client, page cache warm; get = random key among those stored, {GET_SECS}s; median of EC_REPS runs, default 3)");
        println!("(get is over the keys that were stored; 'verified' = length and first word match)");
        println!("| engine | size | puts | put ops/s | put MiB/s | stored after put | get ops/s | get MiB/s | verified hits | put p50 / p99 |");
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for size in [KIB, 64 * KIB, MIB] {
            let only = std::env::var("EC_ONLY").unwrap_or_default();
            let reps: usize = std::env::var("EC_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
            let mut rows = vec![];
            // each engine is run `reps` times, interleaved; the row shows the median
            // put rate and the median get rate (the machine is shared and noisy)
            let mut runs: Vec<Vec<Row>> = vec![vec![], vec![], vec![]];
            for _ in 0..reps {
                if only != "foyer" {
                    runs[0].push(bench_file(size));
                }
                if only != "file" {
                    runs[1].push(rt.block_on(bench_foyer(size, false)));
                    runs[2].push(rt.block_on(bench_foyer(size, true)));
                }
            }
            for mut r in runs.into_iter().filter(|r| !r.is_empty()) {
                let mid = r.len() / 2;
                r.sort_by(|a, b| (a.gets as f64 / a.get_s).total_cmp(&(b.gets as f64 / b.get_s)));
                let (gets, get_s, get_hits) = (r[mid].gets, r[mid].get_s, r[mid].get_hits);
                r.sort_by(|a, b| (a.puts as f64 / a.put_s).total_cmp(&(b.puts as f64 / b.put_s)));
                let mut row = r.swap_remove(mid);
                row.gets = gets;
                row.get_s = get_s;
                row.get_hits = get_hits;
                rows.push(row);
            }
            for row in rows {
                println!(
                    "| {} | {} | {} | {:.0} | {:.1} | {} ({:.1}%) | {:.0} | {:.1} | {:.1}% | {} |",
                    row.engine,
                    fmt_size(row.size),
                    row.puts,
                    row.puts as f64 / row.put_s,
                    (row.puts * row.size) as f64 / row.put_s / MIB as f64,
                    row.stored,
                    100.0 * row.stored as f64 / row.puts as f64,
                    row.gets as f64 / row.get_s,
                    (row.gets * row.size) as f64 / row.get_s / MIB as f64,
                    100.0 * row.get_hits as f64 / row.gets.max(1) as f64,
                    row.put_lat.map(|(a, b)| format!("{a:.0} / {b:.0} µs")).unwrap_or_else(|| "-".into())
                );
            }
        }
    }
    if all || part == "reopen" {
        println!("\n## Reopen with {REOPEN_N} stored 1 KiB entries (page cache warm)");
        let (fs, fnum) = reopen_file();
        println!("- file-per-object: open (index rebuilt from every meta header) {fs:.3}s, {fnum} entries indexed");
        let (ys, ynum, yput) = rt.block_on(reopen_foyer());
        println!("- foyer: build() incl. recovery {ys:.3}s, {ynum} of {yput} entries indexed");
    }
    if all || part == "max" {
        println!("\n## Largest value (one child process per case; RSS = VmHWM)");
        for mib in [16, 64, 256, 1024] {
            println!("- {}", run_child(&["foyer-max", &mib.to_string(), "default"]));
        }
        for mib in [16, 64, 256, 1024] {
            println!("- {}", run_child(&["foyer-max", &mib.to_string(), "sized"]));
        }
        for mib in [16, 64, 256, 1024] {
            println!("- {}", run_child(&["file-max", &mib.to_string()]));
        }
    }
    if all || part == "crash" {
        println!("\n## kill -9 during puts, reopen, verify every value against its key ({CRASH_ROUNDS} rounds, same directory)");
        let f = crash_file();
        println!("- file-per-object: {f:?}");
        let y = rt.block_on(crash_foyer());
        println!("- foyer: {y:?}");
    }
    if all || part == "stream" {
        println!("\n## Read while the put is still streaming");
        println!("- foyer: no API for it (insert takes a complete value; see README)");
        println!("- file-per-object: {}", stream_demo(256));
    }
    if all || part == "flip" {
        println!("\n## {FLIPS} random byte flips in the stored files ({FLIP_N} values of 1 KiB..1 MiB), reopen, verify");
        println!("- file-per-object: {:?}", flip_file());
        println!("- foyer: {:?}", rt.block_on(flip_foyer()));
    }
}
