//! `MemCache` against a plain model: random sequences of writes, finishes, abandoned writes,
//! purges, meta updates and lookups must agree with a `HashMap` of complete entries plus a
//! list of open writes. Also a stress test: concurrent writers of one key never mix bodies.

// Test code: a failed unwrap is a failed check, and the model's one `match` reads best whole.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

use std::collections::HashMap;

use bytes::Bytes;
use larder_storage::{CacheKey, Error, HitHandler, MemCache, MissHandler, PurgeType, Storage};
use proptest::prelude::*;
use tracing::Span;

use larder_testkit::storage_contract::{meta, read_all};

#[derive(Debug, Clone)]
enum Op {
    Start(usize),
    Write(usize, u8),
    Finish(usize),
    Drop(usize),
    Purge(usize),
    Evict(usize),
    Update(usize),
    Lookup(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..3).prop_map(Op::Start),
        (0usize..4, any::<u8>()).prop_map(|(w, b)| Op::Write(w, b)),
        (0usize..4).prop_map(Op::Finish),
        (0usize..4).prop_map(Op::Drop),
        (0usize..3).prop_map(Op::Purge),
        (0usize..3).prop_map(Op::Evict),
        (0usize..3).prop_map(Op::Update),
        (0usize..3).prop_map(Op::Lookup),
    ]
}

struct OpenWrite {
    key: usize,
    tag: String,
    body: Vec<u8>,
    purged: bool,
    handler: MissHandler,
}

fn cache_key(k: usize) -> CacheKey {
    CacheKey::new("model", format!("/{k}"), "")
}

fn tag_of(meta: &larder_storage::CacheMeta) -> String {
    meta.headers()["x-tag"].to_str().unwrap().to_owned()
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let cache: &'static MemCache = Box::leak(Box::new(MemCache::new()));
    let span = Span::none();
    let mut complete: HashMap<usize, (String, Vec<u8>)> = HashMap::new();
    let mut open: Vec<OpenWrite> = Vec::new();
    let mut counter = 0;
    for op in ops {
        match op {
            Op::Start(k) => {
                counter += 1;
                let tag = format!("w{counter}");
                let handler = cache
                    .get_miss_handler(&cache_key(k), &meta(&tag), &span)
                    .await
                    .unwrap();
                open.push(OpenWrite {
                    key: k,
                    tag,
                    body: Vec::new(),
                    purged: false,
                    handler,
                });
            }
            Op::Write(w, byte) => {
                if let Some(write) = open.get_mut(w) {
                    write
                        .handler
                        .write_body(Bytes::from(vec![byte; 3]), false)
                        .await
                        .unwrap();
                    write.body.extend_from_slice(&[byte; 3]);
                }
            }
            Op::Finish(w) => {
                if w < open.len() {
                    let write = open.remove(w);
                    let result = write.handler.finish().await;
                    if write.purged {
                        prop_assert!(matches!(result, Err(Error::WritePurged)));
                    } else {
                        prop_assert!(result.is_ok());
                        complete.insert(write.key, (write.tag, write.body));
                    }
                }
            }
            Op::Drop(w) => {
                if w < open.len() {
                    open.remove(w);
                }
            }
            Op::Purge(k) => {
                let found = cache
                    .purge(&cache_key(k).to_compact(), PurgeType::Invalidation, &span)
                    .await
                    .unwrap();
                let mut expected = complete.remove(&k).is_some();
                for write in open.iter_mut().filter(|w| w.key == k && !w.purged) {
                    write.purged = true;
                    expected = true;
                }
                prop_assert_eq!(found, expected);
            }
            Op::Evict(k) => {
                let found = cache
                    .purge(&cache_key(k).to_compact(), PurgeType::Eviction, &span)
                    .await
                    .unwrap();
                prop_assert_eq!(found, complete.remove(&k).is_some());
            }
            Op::Update(k) => {
                counter += 1;
                let tag = format!("u{counter}");
                let updated = cache
                    .update_meta(&cache_key(k), &meta(&tag), &span)
                    .await
                    .unwrap();
                prop_assert_eq!(updated, complete.contains_key(&k));
                if let Some(entry) = complete.get_mut(&k) {
                    entry.0 = tag;
                }
            }
            Op::Lookup(k) => {
                let found = cache.lookup(&cache_key(k), &span).await.unwrap();
                let newest_open = open.iter().rev().find(|w| w.key == k && !w.purged);
                match (found, newest_open, complete.get(&k)) {
                    (Some((m, hit)), Some(write), _) => {
                        // A write in progress is preferred; its bytes so far are readable.
                        prop_assert_eq!(tag_of(&m), write.tag.clone());
                        prop_assert!(!hit.should_count_access());
                        prop_assert_eq!(
                            read_available(hit, write.body.len()).await,
                            write.body.clone()
                        );
                    }
                    (Some((m, mut hit)), None, Some((tag, body))) => {
                        prop_assert_eq!(&tag_of(&m), tag);
                        prop_assert_eq!(&read_all(&mut hit).await.unwrap(), body);
                    }
                    (None, None, None) => {}
                    (found, write, entry) => {
                        return Err(TestCaseError::fail(format!(
                            "lookup {k}: found {}, open write {}, complete {}",
                            found.is_some(),
                            write.is_some(),
                            entry.is_some()
                        )));
                    }
                }
            }
        }
    }
    drop(open);
    prop_assert_eq!(cache.writes_in_progress(), 0);
    prop_assert_eq!(cache.len(), complete.len());
    let stored: usize = complete
        .values()
        .map(|(tag, body)| meta(tag).serialize().unwrap().len() + body.len())
        .sum();
    prop_assert_eq!(cache.stored_bytes(), stored);
    Ok(())
}

/// Reads exactly `len` bytes from a reader of a write in progress (more would wait forever).
async fn read_available(mut hit: HitHandler, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < len {
        let chunk = hit.read_body().await.unwrap().unwrap();
        out.extend_from_slice(&chunk);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn memcache_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(run(ops))?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_of_one_key_never_mix_bodies() {
    const WRITERS: u8 = 8;
    const CHUNKS: usize = 50;
    let cache: &'static MemCache = Box::leak(Box::new(MemCache::new()));
    let key = cache_key(0);
    let mut tasks = Vec::new();
    for id in 1..=WRITERS {
        let writer_key = key.clone();
        tasks.push(tokio::spawn(async move {
            let span = Span::none();
            let mut miss = cache
                .get_miss_handler(&writer_key, &meta("w"), &span)
                .await
                .unwrap();
            for _ in 0..CHUNKS {
                miss.write_body(Bytes::from(vec![id; 7]), false)
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
            // Odd writers give up; even ones finish.
            if id % 2 == 0 {
                miss.finish().await.unwrap();
            }
        }));
        let reader_key = key.clone();
        tasks.push(tokio::spawn(async move {
            let span = Span::none();
            for _ in 0..4 {
                if let Some((_, mut hit)) = cache.lookup(&reader_key, &span).await.unwrap() {
                    match read_all(&mut hit).await {
                        Ok(body) => {
                            assert_eq!(body.len(), 7 * CHUNKS, "a clean end has the whole body");
                            assert!(
                                body.iter().all(|&b| b == body[0] && b % 2 == 0),
                                "one writer's bytes"
                            );
                        }
                        Err(e) => assert!(matches!(e, Error::WriteAbandoned), "{e}"),
                    }
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let span = Span::none();
    let (_, mut hit) = cache.lookup(&key, &span).await.unwrap().unwrap();
    let body = read_all(&mut hit).await.unwrap();
    assert_eq!(body.len(), 7 * CHUNKS);
    assert!(body.iter().all(|&b| b == body[0] && b % 2 == 0));
    assert_eq!(cache.writes_in_progress(), 0);
}
