//! One LRU shard: an index-linked list in a `Vec` of slots plus a hash table from key to slot.
//!
//! The list lives in one growable `Vec<Node<T>>`; links are `u32` slot indices, and freed slots are
//! kept on a free list threaded through `next`, so the vector never shrinks and a steady-state
//! cache allocates nothing per operation. The hash table stores only the `u32` slot index (the key
//! lives in the node), which keeps it at 4 bytes + 1 control byte per entry. Nothing here is
//! synchronised: [`crate::Lru`] wraps each shard in a lock.

use hashbrown::HashTable;

/// The "no slot" index, used as the list terminator.
const NIL: u32 = u32::MAX;

/// Mixes a key before it indexes the hash table.
///
/// Keys are already hashes, but the shard is chosen by `key % N`, so within one shard the low
/// bits of every key agree. A folded 64x64->128 multiply spreads all input bits over the low bits
/// (bucket index) and the high bits (hashbrown's 7-bit tag).
#[inline]
fn mix(key: u64) -> u64 {
    let full = u128::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
    #[allow(clippy::cast_possible_truncation)] // folding: both halves are used on purpose
    let folded = (full as u64) ^ ((full >> 64) as u64);
    folded
}

/// One slot of the list. `data` is `None` only while the slot is on the free list.
#[derive(Debug)]
struct Node<T> {
    key: u64,
    weight: usize,
    prev: u32,
    next: u32,
    data: Option<T>,
}

/// A single-threaded weighted LRU list keyed by `u64`.
#[derive(Debug)]
pub(crate) struct Shard<T> {
    table: HashTable<u32>,
    nodes: Vec<Node<T>>,
    /// Most recently used slot, or `NIL`.
    head: u32,
    /// Least recently used slot, or `NIL`.
    tail: u32,
    /// First free slot, or `NIL`; free slots are chained through `next`.
    free: u32,
    len: usize,
    weight: usize,
}

impl<T> Shard<T> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            table: HashTable::with_capacity(capacity),
            nodes: Vec::with_capacity(capacity),
            head: NIL,
            tail: NIL,
            free: NIL,
            len: 0,
            weight: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn weight(&self) -> usize {
        self.weight
    }

    #[inline]
    fn find(&self, key: u64) -> Option<u32> {
        let nodes = &self.nodes;
        self.table
            .find(mix(key), |&i| nodes[i as usize].key == key)
            .copied()
    }

    /// Detaches slot `i` from the list (its own links are left stale).
    #[inline]
    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let n = &self.nodes[i as usize];
            (n.prev, n.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
    }

    #[inline]
    fn link_head(&mut self, i: u32) {
        let old = self.head;
        {
            let n = &mut self.nodes[i as usize];
            n.prev = NIL;
            n.next = old;
        }
        if old == NIL {
            self.tail = i;
        } else {
            self.nodes[old as usize].prev = i;
        }
        self.head = i;
    }

    #[inline]
    fn link_tail(&mut self, i: u32) {
        let old = self.tail;
        {
            let n = &mut self.nodes[i as usize];
            n.next = NIL;
            n.prev = old;
        }
        if old == NIL {
            self.head = i;
        } else {
            self.nodes[old as usize].next = i;
        }
        self.tail = i;
    }

    #[inline]
    fn move_to_head(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.link_head(i);
        }
    }

    /// Takes a slot (from the free list or by growing) and fills it; not yet linked or indexed.
    fn alloc(&mut self, key: u64, data: T, weight: usize) -> u32 {
        if self.free == NIL {
            let i = u32::try_from(self.nodes.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("an LRU shard holds fewer than u32::MAX items");
            self.nodes.push(Node {
                key,
                weight,
                prev: NIL,
                next: NIL,
                data: Some(data),
            });
            i
        } else {
            let i = self.free;
            let n = &mut self.nodes[i as usize];
            self.free = n.next;
            n.key = key;
            n.weight = weight;
            n.data = Some(data);
            i
        }
    }

    /// Empties slot `i` (already unlinked and unindexed) onto the free list.
    fn release(&mut self, i: u32) -> (u64, T, usize) {
        let free = self.free;
        let n = &mut self.nodes[i as usize];
        n.next = free;
        n.prev = NIL;
        let data = n.data.take().expect("a linked slot holds data");
        self.free = i;
        self.len -= 1;
        self.weight -= n.weight;
        (n.key, data, n.weight)
    }

    fn insert_new(&mut self, key: u64, data: T, weight: usize, at_head: bool) {
        let i = self.alloc(key, data, weight);
        let nodes = &self.nodes;
        self.table
            .insert_unique(mix(key), i, |&j| mix(nodes[j as usize].key));
        if at_head {
            self.link_head(i);
        } else {
            self.link_tail(i);
        }
        self.len += 1;
        self.weight += weight;
    }

    /// Inserts or updates `key` and moves it to the head. Returns the old weight (0 if new).
    pub(crate) fn admit(&mut self, key: u64, data: T, weight: usize) -> usize {
        if let Some(i) = self.find(key) {
            let n = &mut self.nodes[i as usize];
            let old = n.weight;
            n.weight = weight;
            n.data = Some(data);
            self.weight = self.weight - old + weight;
            self.move_to_head(i);
            old
        } else {
            self.insert_new(key, data, weight, true);
            0
        }
    }

    /// Whether `key` is among the `n` most recently used entries (walks at most `n` nodes).
    pub(crate) fn is_near_head(&self, key: u64, n: usize) -> bool {
        let mut i = self.head;
        for _ in 0..n {
            if i == NIL {
                return false;
            }
            let node = &self.nodes[i as usize];
            if node.key == key {
                return true;
            }
            i = node.next;
        }
        false
    }

    /// Moves `key` to the head if present (returns `true`); otherwise inserts `make()` with
    /// `weight` at the head (returns `false`). One table lookup either way.
    #[inline]
    pub(crate) fn promote_or_insert(
        &mut self,
        key: u64,
        weight: usize,
        make: impl FnOnce() -> T,
    ) -> bool {
        if let Some(i) = self.find(key) {
            self.move_to_head(i);
            true
        } else {
            self.insert_new(key, make(), weight, true);
            false
        }
    }

    /// Inserts `key` at the tail unless it is already present. Returns whether it was inserted.
    pub(crate) fn insert_tail(&mut self, key: u64, data: T, weight: usize) -> bool {
        if self.find(key).is_some() {
            return false;
        }
        self.insert_new(key, data, weight, false);
        true
    }

    /// Moves `key` to the head. Returns whether it was present.
    #[inline]
    pub(crate) fn promote(&mut self, key: u64) -> bool {
        match self.find(key) {
            Some(i) => {
                self.move_to_head(i);
                true
            }
            None => false,
        }
    }

    /// Adds `delta` to the weight of `key` (capped at `max`, never lowered) and promotes it.
    /// Returns `(old, new)` weights, or `None` if the key is absent.
    pub(crate) fn increment_weight(
        &mut self,
        key: u64,
        delta: usize,
        max: Option<usize>,
    ) -> Option<(usize, usize)> {
        let i = self.find(key)?;
        let n = &mut self.nodes[i as usize];
        let old = n.weight;
        let grown = old.saturating_add(delta);
        let new = max.map_or(grown, |m| grown.min(m).max(old));
        n.weight = new;
        self.weight = self.weight - old + new;
        self.move_to_head(i);
        Some((old, new))
    }

    pub(crate) fn peek(&self, key: u64) -> bool {
        self.find(key).is_some()
    }

    pub(crate) fn peek_weight(&self, key: u64) -> Option<usize> {
        self.find(key).map(|i| self.nodes[i as usize].weight)
    }

    /// The least recently used entry, without changing anything.
    pub(crate) fn peek_lru(&self) -> Option<(u64, &T, usize)> {
        if self.tail == NIL {
            return None;
        }
        let n = &self.nodes[self.tail as usize];
        n.data.as_ref().map(|d| (n.key, d, n.weight))
    }

    /// Removes `key`. Returns its data and weight.
    pub(crate) fn remove(&mut self, key: u64) -> Option<(T, usize)> {
        let nodes = &self.nodes;
        let entry = self
            .table
            .find_entry(mix(key), |&i| nodes[i as usize].key == key)
            .ok()?;
        let (i, _) = entry.remove();
        self.unlink(i);
        let (_, data, weight) = self.release(i);
        Some((data, weight))
    }

    /// Removes the least recently used entry unless it is `keep`.
    pub(crate) fn evict_unless(&mut self, keep: Option<u64>) -> Option<(u64, T, usize)> {
        let i = self.tail;
        if i == NIL {
            return None;
        }
        let key = self.nodes[i as usize].key;
        if keep == Some(key) {
            return None;
        }
        if let Ok(entry) = self.table.find_entry(mix(key), |&j| j == i) {
            entry.remove();
        }
        self.unlink(i);
        Some(self.release(i))
    }

    /// Calls `f` on each entry from most to least recently used.
    pub(crate) fn for_each<F: FnMut(u64, &T, usize)>(&self, mut f: F) {
        let mut i = self.head;
        while i != NIL {
            let n = &self.nodes[i as usize];
            if let Some(d) = n.data.as_ref() {
                f(n.key, d, n.weight);
            }
            i = n.next;
        }
    }

    /// Keys from most to least recently used (tests only).
    #[cfg(test)]
    pub(crate) fn keys(&self) -> Vec<u64> {
        let mut v = Vec::with_capacity(self.len);
        self.for_each(|k, _, _| v.push(k));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_rev(s: &Shard<u32>) -> Vec<u64> {
        // Walk tail -> head through `prev` to check both directions of the links.
        let mut v = Vec::new();
        let mut i = s.tail;
        while i != NIL {
            v.push(s.nodes[i as usize].key);
            i = s.nodes[i as usize].prev;
        }
        v.reverse();
        v
    }

    #[test]
    fn admit_promote_evict_keep_lru_order() {
        let mut s = Shard::with_capacity(4);
        for k in 1..=4 {
            assert_eq!(s.admit(k, u32::try_from(k).unwrap(), 1), 0);
        }
        assert_eq!(s.keys(), [4, 3, 2, 1]);
        assert!(s.promote(2));
        assert!(!s.promote(9));
        assert_eq!(s.keys(), [2, 4, 3, 1]);
        assert_eq!(keys_rev(&s), s.keys());
        assert_eq!(s.evict_unless(None), Some((1, 1, 1)));
        assert_eq!(s.evict_unless(Some(3)), None);
        assert_eq!(s.keys(), [2, 4, 3]);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn freed_slots_are_reused() {
        let mut s = Shard::with_capacity(2);
        s.admit(1, 1u32, 5);
        s.admit(2, 2, 5);
        assert_eq!(s.remove(1), Some((1, 5)));
        s.admit(3, 3, 7);
        assert_eq!(s.nodes.len(), 2);
        assert_eq!(s.keys(), [3, 2]);
        assert_eq!(keys_rev(&s), [3, 2]);
        assert_eq!(s.weight(), 12);
    }

    #[test]
    fn readmit_updates_weight_and_data() {
        let mut s = Shard::with_capacity(2);
        s.admit(1, 1u32, 5);
        s.admit(2, 2, 5);
        assert_eq!(s.admit(1, 10, 2), 5);
        assert_eq!(s.keys(), [1, 2]);
        assert_eq!(s.weight(), 7);
        assert_eq!(s.remove(1), Some((10, 2)));
    }

    #[test]
    fn increment_weight_caps_and_never_lowers() {
        let mut s = Shard::with_capacity(2);
        s.admit(1, 1u32, 5);
        assert_eq!(s.increment_weight(1, 3, None), Some((5, 8)));
        assert_eq!(s.increment_weight(1, 3, Some(10)), Some((8, 10)));
        assert_eq!(s.increment_weight(1, 3, Some(4)), Some((10, 10)));
        assert_eq!(s.increment_weight(2, 3, None), None);
        assert_eq!(s.weight(), 10);
    }

    #[test]
    fn insert_tail_appends_and_refuses_duplicates() {
        let mut s = Shard::with_capacity(2);
        assert!(s.insert_tail(1, 1u32, 1));
        assert!(s.insert_tail(2, 2, 1));
        assert!(!s.insert_tail(1, 1, 1));
        assert_eq!(s.keys(), [1, 2]);
        assert_eq!(s.peek_lru(), Some((2, &2, 1)));
    }

    #[test]
    fn is_near_head_looks_at_the_first_n_only() {
        let mut s = Shard::with_capacity(4);
        for k in 1..=4 {
            s.admit(k, (), 1);
        }
        assert!(s.is_near_head(4, 1));
        assert!(s.is_near_head(3, 2));
        assert!(!s.is_near_head(2, 2));
        assert!(s.is_near_head(1, 10));
        assert!(!s.is_near_head(9, 10));
        assert!(!s.is_near_head(4, 0));
    }

    #[test]
    fn node_stays_compact() {
        // The crate docs promise 32-byte nodes for `T = ()`; a field change that grows them
        // should be a deliberate decision.
        assert_eq!(std::mem::size_of::<Node<()>>(), 32);
    }

    #[test]
    fn keys_sharing_low_bits_do_not_collide() {
        // Every key is a multiple of 1024, as in one shard of a 1024-shard LRU.
        let mut s = Shard::with_capacity(16);
        for k in 0..2000u64 {
            s.admit(k << 10, (), 1);
        }
        assert!((0..2000u64).all(|k| s.peek(k << 10)));
        assert!(!s.peek(1));
    }
}
