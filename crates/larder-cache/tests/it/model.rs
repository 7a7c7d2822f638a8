//! The phase table as a model: random sequences of calls that are valid in the current phase
//! must move `HttpCache` exactly as the documented transitions say, and never panic; and what
//! the decision core (`larder_cache::decide`) says to do with a found entry is always a call
//! the phase allows.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::StatusCode;
use larder_cache::decide::{self, FoundAction, FoundFacts};
use larder_cache::{
    CacheKey, CacheMeta, CachePhase, HitHandler, HitStatus, HttpCache, MemCache, NoCacheReason,
    ResponseHeader,
};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Lookup,
    Found(HitStatus),
    Miss,
    SetMeta,
    SetMissHandler,
    WriteAndFinish,
    Revalidate,
    RevalidateUncacheable,
    StaleUpdating,
    FinishHit,
    Bypass,
    Purge,
    Disable,
}

/// The calls valid in the current state, in a fixed order.
fn valid_ops(
    cache: &mut HttpCache,
    found: Option<&(CacheMeta, HitHandler)>,
    miss_handler_set: bool,
) -> Vec<Op> {
    use CachePhase as P;
    let phase = cache.phase();
    let mut ops = Vec::new();
    match phase {
        P::CacheKey | P::Stale => {
            if found.is_some() {
                // Mostly act on what the lookup found.
                ops.extend(
                    [
                        HitStatus::Fresh,
                        HitStatus::ForceFresh,
                        HitStatus::Expired,
                        HitStatus::ForceExpired,
                        HitStatus::ForceMiss,
                        HitStatus::FailedHitFilter,
                    ]
                    .map(Op::Found),
                );
            } else {
                ops.extend([Op::Lookup, Op::Lookup, Op::Lookup]);
            }
            ops.push(Op::Miss);
            if phase == P::CacheKey {
                ops.extend([Op::Bypass, Op::Purge]);
            } else {
                ops.extend([
                    Op::SetMeta,
                    Op::Revalidate,
                    Op::RevalidateUncacheable,
                    Op::StaleUpdating,
                    Op::FinishHit,
                ]);
            }
        }
        P::Bypass => ops.push(Op::Miss),
        P::Miss | P::Expired => {
            if !miss_handler_set {
                ops.push(Op::SetMeta);
                if cache.maybe_cache_meta().is_some() {
                    ops.push(Op::SetMissHandler);
                }
            } else if cache.miss_handler().is_some() {
                ops.push(Op::WriteAndFinish);
            }
        }
        P::Hit | P::StaleUpdating | P::Revalidated | P::RevalidatedNoCache(_) => {
            ops.push(Op::FinishHit);
        }
        P::Disabled(_) | P::Uninit => {}
    }
    ops
}

fn meta(fresh: bool) -> CacheMeta {
    let now = SystemTime::now();
    let fresh_until = if fresh {
        now + Duration::from_mins(1)
    } else {
        now - Duration::from_secs(1)
    };
    CacheMeta::new(fresh_until, now, 0, 0, ResponseHeader::new(StatusCode::OK))
}

/// Applies `op` if the phase allows it; returns the phase the model expects afterwards, or
/// `None` when the op was skipped.
async fn apply(
    cache: &mut HttpCache,
    found: &mut Option<(CacheMeta, HitHandler)>,
    miss_handler_set: &mut bool,
    op: Op,
) -> Option<CachePhase> {
    use CachePhase as P;
    let phase = cache.phase();
    let expect = match (op, phase) {
        (Op::Lookup, P::CacheKey | P::Stale) => {
            *found = cache.cache_lookup().await.expect("memcache lookup");
            phase
        }
        (Op::Found(status), P::CacheKey | P::Stale) if found.is_some() => {
            let (meta, hit) = found.take()?;
            cache.cache_found(meta, hit, status);
            match status {
                HitStatus::Fresh | HitStatus::ForceFresh => P::Hit,
                HitStatus::Expired | HitStatus::ForceExpired => P::Stale,
                HitStatus::ForceMiss | HitStatus::FailedHitFilter => P::CacheKey,
            }
        }
        (Op::Miss, P::CacheKey | P::Bypass | P::Stale) => {
            cache.cache_miss();
            *miss_handler_set = false;
            P::Miss
        }
        (Op::SetMeta, P::Miss | P::Expired | P::Stale) if !*miss_handler_set => {
            // Alternate fresh and stale entries so later lookups see both.
            let fresh = cache
                .lookup_duration()
                .is_none_or(|d| d.as_nanos() % 2 == 0);
            cache.set_cache_meta(meta(fresh));
            if phase == P::Stale { P::Expired } else { phase }
        }
        (Op::SetMissHandler, P::Miss | P::Expired)
            if !*miss_handler_set && cache.maybe_cache_meta().is_some() =>
        {
            cache.set_miss_handler().await.expect("miss handler");
            *miss_handler_set = true;
            phase
        }
        (Op::WriteAndFinish, P::Miss | P::Expired) if cache.miss_handler().is_some() => {
            let handler = cache.miss_handler().expect("checked");
            handler
                .write_body(Bytes::from_static(b"body"), true)
                .await
                .expect("write");
            cache.finish_miss_handler().await.expect("finish");
            phase
        }
        (Op::Revalidate, P::Stale) => {
            let _ = cache.revalidate_cache_meta(meta(true)).await;
            P::Revalidated
        }
        (Op::RevalidateUncacheable, P::Stale) => {
            cache.revalidate_uncacheable(
                ResponseHeader::new(StatusCode::OK),
                NoCacheReason::OriginNotCache,
            );
            P::RevalidatedNoCache(NoCacheReason::OriginNotCache)
        }
        (Op::StaleUpdating, P::Stale) => {
            cache.set_stale_updating();
            P::StaleUpdating
        }
        (
            Op::FinishHit,
            P::Hit | P::Stale | P::StaleUpdating | P::Revalidated | P::RevalidatedNoCache(_),
        ) => {
            cache.finish_hit_handler().await.expect("finish hit");
            cache
                .finish_hit_handler()
                .await
                .expect("finishing twice is fine");
            phase
        }
        (Op::Bypass, P::CacheKey) => {
            cache.bypass();
            P::Bypass
        }
        (Op::Purge, P::CacheKey) => {
            let _ = cache.purge().await.expect("purge");
            P::CacheKey
        }
        (Op::Disable, _) => {
            cache.disable(NoCacheReason::InternalError);
            P::Disabled(NoCacheReason::InternalError)
        }
        _ => return None,
    };
    Some(expect)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn phase_transitions_follow_the_table(
        seeded_fresh in proptest::option::of(any::<bool>()),
        choices in proptest::collection::vec(any::<u8>(), 1..32),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let storage: &'static MemCache = Box::leak(Box::new(MemCache::new()));
            if let Some(fresh) = seeded_fresh {
                // An entry stored by an earlier request, fresh or stale.
                let mut writer = HttpCache::new();
                writer.enable(storage, None, None, None, None);
                writer.set_cache_key(CacheKey::new("", "/model", ""));
                writer.cache_miss();
                writer.set_cache_meta(meta(fresh));
                writer.set_miss_handler().await.expect("miss handler");
                let handler = writer.miss_handler().expect("set");
                handler.write_body(Bytes::from_static(b"seed"), true).await.expect("write");
                writer.finish_miss_handler().await.expect("finish");
            }
            // Two requests share the storage so entries written by one are found by the other.
            for _ in 0..2 {
                let mut cache = HttpCache::new();
                cache.enable(storage, None, None, None, None);
                cache.set_cache_key(CacheKey::new("", "/model", ""));
                let mut found = None;
                let mut miss_handler_set = false;
                for &choice in &choices {
                    let mut ops = valid_ops(&mut cache, found.as_ref(), miss_handler_set);
                    // Disabling ends the interesting part, so it is a rare choice.
                    if choice % 16 == 0 {
                        ops = vec![Op::Disable];
                    }
                    let Some(&op) = ops.get(usize::from(choice) % ops.len().max(1)) else {
                        break;
                    };
                    let expect = apply(&mut cache, &mut found, &mut miss_handler_set, op).await;
                    prop_assert!(expect.is_some(), "{:?} valid in {:?}", op, cache.phase());
                    if let Some(expect) = expect {
                        prop_assert_eq!(cache.phase(), expect, "after {:?}", op);
                    }
                    if let Op::Found(_) = op {
                        // The decision core's answer for what was found is executable in the
                        // phase it leaves the cache in.
                        let action = decide::found(
                            FoundFacts {
                                phase: cache.phase(),
                                must_revalidate: false,
                                locked: cache.is_cache_locked(),
                                lock_writer: cache.is_cache_lock_writer(),
                                can_serve_stale_updating: cache.can_serve_stale_updating(),
                                no_store: false,
                            },
                            || true,
                        );
                        let needed = match action {
                            FoundAction::Serve => Op::FinishHit,
                            FoundAction::ServeStale
                            | FoundAction::ServeStaleAndRefresh
                            | FoundAction::ServeStaleWithoutRefresh => Op::StaleUpdating,
                            FoundAction::Revalidate => Op::Revalidate,
                            FoundAction::Miss => Op::Miss,
                            FoundAction::Wait => {
                                prop_assert!(false, "no lock, yet told to wait");
                                Op::Miss
                            }
                        };
                        let ops = valid_ops(&mut cache, None, miss_handler_set);
                        prop_assert!(ops.contains(&needed), "{:?} in {:?}", action, cache.phase());
                    }
                    prop_assert_eq!(
                        cache.enabled(),
                        !matches!(cache.phase(), CachePhase::Disabled(_) | CachePhase::Bypass)
                    );
                    if cache.phase() == CachePhase::Hit {
                        prop_assert!(cache.maybe_cache_meta().is_some());
                    }
                }
            }
            Ok(())
        })?;
    }
}
