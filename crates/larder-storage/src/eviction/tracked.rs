//! The code every eviction manager shares: [`EvictionManager`] written once over [`Tracked`],
//! which says only what a manager adds to its policy (its saved files, how it restores them,
//! how an access of an untracked key is handled, any index kept beside the policy).

use std::path::Path;
use std::time::SystemTime;

use async_trait::async_trait;
use larder_eviction::{Evicted, EvictionPolicy};

use super::{EvictionManager, eviction_key, persist};
use crate::{CompactCacheKey, Error, Result};

/// What one eviction manager is made of beyond its policy. [`EvictionManager`] is implemented
/// for every `Tracked` type: the counters, admission, growth, removal and peeks delegate to
/// [`policy`](Self::policy) (keys go through [`eviction_key`]) and then call the hooks here;
/// save and load go through [`persist`].
pub(crate) trait Tracked: Send + Sync {
    /// The policy that counts sizes and picks victims.
    type Policy: EvictionPolicy<CompactCacheKey>;

    /// The start of every saved file's name (leftover `{FILE_PREFIX}*.tmp` files are removed
    /// by `load`).
    const FILE_PREFIX: &'static str;

    /// The policy.
    fn policy(&self) -> &Self::Policy;

    /// The names of the saved files under the save directory: file `i` holds
    /// [`saved_entries(i)`](Self::saved_entries). One file named `FILE_PREFIX` unless
    /// overridden.
    fn file_names(&self) -> Vec<String> {
        vec![Self::FILE_PREFIX.to_owned()]
    }

    /// The entries file `file` saves, in the order [`restore`](Self::restore) wants them back.
    fn saved_entries(&self, file: usize) -> Vec<(CompactCacheKey, usize)>;

    /// Tracks entries read back from one saved file.
    fn restore(&self, entries: Vec<(CompactCacheKey, usize)>);

    /// [`EvictionManager::access`], `key` being `item`'s eviction key.
    fn access(&self, key: u64, item: &CompactCacheKey, size: usize) -> bool;

    /// [`EvictionManager::peek`].
    fn peek(&self, key: u64) -> bool {
        self.policy().peek(key)
    }

    /// Called after the policy admitted `item` with `size`.
    fn admitted(&self, _key: u64, _item: &CompactCacheKey, _size: usize) {}

    /// Called after the policy grew a tracked entry by `delta` (up to `max_weight`).
    fn grown(&self, _key: u64, _delta: usize, _max_weight: Option<usize>) {}

    /// Called for each key that left the policy: evicted, refused or removed.
    fn dropped(&self, _key: u64) {}
}

fn victims<T: Tracked + ?Sized>(
    manager: &T,
    evicted: Vec<Evicted<CompactCacheKey>>,
) -> Vec<CompactCacheKey> {
    evicted
        .into_iter()
        .map(|e| {
            manager.dropped(e.key);
            e.data
        })
        .collect()
}

#[async_trait]
impl<T: Tracked> EvictionManager for T {
    fn total_size(&self) -> usize {
        self.policy().weight()
    }

    fn total_items(&self) -> usize {
        self.policy().len()
    }

    fn evicted_size(&self) -> usize {
        self.policy().evicted_weight()
    }

    fn evicted_items(&self) -> usize {
        self.policy().evicted_len()
    }

    fn admit(
        &self,
        item: CompactCacheKey,
        size: usize,
        _fresh_until: SystemTime,
    ) -> Vec<CompactCacheKey> {
        let key = eviction_key(&item);
        let evicted = self.policy().admit(key, item.clone(), size);
        self.admitted(key, &item, size);
        victims(self, evicted)
    }

    fn increment_weight(
        &self,
        item: &CompactCacheKey,
        delta: usize,
        max_weight: Option<usize>,
    ) -> Vec<CompactCacheKey> {
        let key = eviction_key(item);
        let evicted = self.policy().increment_weight(key, delta, max_weight);
        self.grown(key, delta, max_weight);
        victims(self, evicted)
    }

    fn remove(&self, item: &CompactCacheKey) {
        let key = eviction_key(item);
        self.policy().remove(key);
        self.dropped(key);
    }

    fn access(&self, item: &CompactCacheKey, size: usize, _fresh_until: SystemTime) -> bool {
        Tracked::access(self, eviction_key(item), item, size)
    }

    fn peek(&self, item: &CompactCacheKey) -> bool {
        Tracked::peek(self, eviction_key(item))
    }

    async fn save(&self, dir_path: &str) -> Result<()> {
        let dir = Path::new(dir_path);
        for (i, name) in self.file_names().into_iter().enumerate() {
            let data = persist::encode(&self.saved_entries(i));
            persist::write_atomic(dir.join(name), data).await?;
        }
        Ok(())
    }

    /// Loads every saved file. A missing file is an error; a corrupt one is skipped (with a
    /// warning) while the others load, and then reported as the error.
    async fn load(&self, dir_path: &str) -> Result<()> {
        let dir = Path::new(dir_path);
        let mut first_error = None;
        for name in self.file_names() {
            match persist::load_file(dir.join(name)).await {
                Ok(entries) => self.restore(entries),
                Err(e @ Error::CorruptEvictionState { .. }) => {
                    tracing::warn!(error = %e, "skipping corrupt eviction state");
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        persist::remove_tmp_files(dir.to_owned(), Self::FILE_PREFIX).await;
        first_error.map_or(Ok(()), Err)
    }
}
