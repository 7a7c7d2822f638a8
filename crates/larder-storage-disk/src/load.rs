//! The start-up load, on a background thread: the saved eviction state first (the order of
//! the entries), then a scan of `objects/` that deletes what a crash left behind and admits
//! the entries the saved state did not know, then the tracked keys whose files are gone are
//! forgotten. Lookups meanwhile read the files directly.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use crate::format;
use crate::inner::{Inner, index_key, read_prefix};
use crate::layout::Name;

/// Loads the saved state, scans, and marks the storage loaded.
pub(crate) fn run(inner: &Inner) {
    let started = Instant::now();
    load_state(inner);
    inner.state_loaded.store(true, Ordering::Release);
    let mut seen = HashSet::new();
    let mut found = 0usize;
    if let Ok(top) = fs::read_dir(&inner.layout.objects) {
        for a in top.flatten() {
            let Ok(sub) = fs::read_dir(a.path()) else {
                continue;
            };
            for b in sub.flatten() {
                found += scan_leaf(inner, &b.path(), &mut seen);
            }
        }
    }
    // Tracked keys (from the saved state) whose entry is gone.
    let mut forgotten = 0usize;
    for (key, _) in inner.index.entries() {
        let name = Name(key.combined_bin());
        if !seen.contains(&name) && !inner.layout.meta_path(&name).exists() {
            inner.index.manager().remove(&key);
            forgotten += 1;
        }
    }
    inner.loaded.store(true, Ordering::Release);
    tracing::info!(
        entries = found,
        forgotten,
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        dir = %inner.layout.root.display(),
        "disk cache loaded"
    );
}

fn load_state(inner: &Inner) {
    let dir = &inner.layout.eviction;
    let has_state = fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    if !has_state {
        return;
    }
    let dir = dir.to_string_lossy().into_owned();
    let manager = inner.index.manager();
    if let Err(e) = crate::inner::run_async(|| manager.load(&dir)) {
        tracing::warn!(error = %e, "cannot load the disk cache eviction state; rebuilding it");
    }
}

/// Settles one leaf directory; returns the number of entries found.
fn scan_leaf(inner: &Inner, dir: &Path, seen: &mut HashSet<Name>) -> usize {
    let Ok(listing) = fs::read_dir(dir) else {
        return 0;
    };
    let mut names: HashMap<Name, Vec<u64>> = HashMap::new();
    for entry in listing.flatten() {
        let file = entry.file_name();
        let Some((name, body)) = file.to_str().and_then(Name::parse_file) else {
            continue;
        };
        if inner.layout.leaf_dir(&name) != dir {
            // Not where this build files it: nothing will ever read it.
            let _ = fs::remove_file(entry.path());
            continue;
        }
        let bodies = names.entry(name).or_default();
        if let Some(id) = body {
            bodies.push(id);
        }
    }
    let mut found = 0;
    for (name, bodies) in names {
        if settle(inner, &name, &bodies) {
            seen.insert(name);
            found += 1;
        }
    }
    found
}

/// Checks the files of `name` under its lock: removes bodies no meta file names, a meta
/// file that does not decode or whose body is missing or short, and admits the entry if the
/// index does not track it. Returns whether an entry stands.
fn settle(inner: &Inner, name: &Name, bodies: &[u64]) -> bool {
    let layout = &inner.layout;
    let meta_path = layout.meta_path(name);
    let guard = inner.lock(name);
    let header = read_prefix(&meta_path);
    let header = match header {
        Ok(Some((bytes, len))) => match format::decode_header(&bytes) {
            Ok((h, _)) if Name(h.key.combined_bin()) == *name => {
                Some((h.id, h.inline_body.is_some(), h.body_len, h.key, len))
            }
            _ => {
                inner
                    .counters
                    .corrupt(&meta_path, "meta file header does not decode");
                let _ = fs::remove_file(&meta_path);
                None
            }
        },
        Ok(None) => None,
        Err(_) => return false,
    };
    let keep = header
        .as_ref()
        .and_then(|(id, inline, ..)| (!inline).then_some(*id));
    for &id in bodies {
        if Some(id) != keep {
            let _ = fs::remove_file(layout.body_path(name, id));
        }
    }
    let Some((id, inline, body_len, key, meta_len)) = header else {
        inner.hot.remove(name);
        return false;
    };
    let body = if inline {
        0
    } else {
        match fs::metadata(layout.body_path(name, id)) {
            Ok(m) if m.len() == body_len => body_len,
            _ => {
                inner
                    .counters
                    .corrupt(&meta_path, "body file missing or torn");
                let _ = fs::remove_file(&meta_path);
                let _ = fs::remove_file(layout.body_path(name, id));
                inner.hot.remove(name);
                return false;
            }
        }
    };
    let ikey = index_key(&key);
    if !inner.index.manager().peek(&ikey) {
        let weight = usize::try_from(meta_len + body).unwrap_or(usize::MAX);
        let victims = inner.index.manager().admit(ikey, weight, SystemTime::now());
        drop(guard);
        inner.purge_victims(victims);
    }
    true
}
