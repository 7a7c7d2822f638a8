//! Properties of the decisions over generated facts.

use std::cell::Cell;

use proptest::prelude::*;

use super::*;

fn phase_strategy() -> impl Strategy<Value = CachePhase> {
    prop::sample::select(vec![
        CachePhase::Hit,
        CachePhase::Stale,
        CachePhase::Miss,
        CachePhase::Bypass,
        CachePhase::Expired,
        CachePhase::Disabled(NoCacheReason::CacheLockGiveUp),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the facts: a fresh hit is served, a stale entry is never served when the
    /// request demands validation, nothing stale is served outside the window, a `no-store`
    /// request never starts a refresh, and the hook is asked only when its answer matters.
    #[test]
    fn found_never_serves_what_the_rules_forbid(
        phase in phase_strategy(),
        must_revalidate: bool, locked: bool, lock_writer: bool,
        can_serve_stale_updating: bool, no_store: bool, hook: bool,
    ) {
        let facts = FoundFacts { phase, must_revalidate, locked, lock_writer, can_serve_stale_updating, no_store };
        let asked = Cell::new(false);
        let action = found(facts, || { asked.set(true); hook });
        let stale_served = matches!(action, FoundAction::ServeStale | FoundAction::ServeStaleAndRefresh | FoundAction::ServeStaleWithoutRefresh);
        prop_assert_eq!(action == FoundAction::Serve, phase == CachePhase::Hit);
        prop_assert_eq!(asked.get(), phase == CachePhase::Stale && !must_revalidate && can_serve_stale_updating);
        if stale_served {
            prop_assert!(phase == CachePhase::Stale && !must_revalidate && can_serve_stale_updating && hook);
        }
        if action == FoundAction::ServeStaleAndRefresh {
            prop_assert!(!no_store && !locked);
        }
        if action == FoundAction::Wait {
            prop_assert!(locked);
        }
        if locked {
            prop_assert!(!matches!(action, FoundAction::Revalidate | FoundAction::Miss | FoundAction::ServeStaleAndRefresh));
        }
    }

    /// A response is written only when the phase fetches for the cache, the request allows
    /// storing, the status is not a 304, the declared length fits, and the filter said yes.
    #[test]
    fn store_writes_only_what_every_rule_allows(
        phase in phase_strategy(),
        status in prop::sample::select(vec![200u16, 203, 206, 301, 304, 404, 500, 503]),
        head: bool, no_store: bool, cacheable: bool,
        length in 0usize..20,
    ) {
        let method = if head { Method::HEAD } else { Method::GET };
        let h = headers(&[("content-length", &length.to_string())]);
        let facts = StoreFacts { phase, method: &method, status: StatusCode::from_u16(status).unwrap(), headers: &h, no_store, max_file_size: Some(10) };
        let asked = Cell::new(false);
        let decision = store(facts, || {
            asked.set(true);
            if cacheable { RespCacheable::Cacheable(meta(0, 60, &[])) } else { RespCacheable::Uncacheable(NoCacheReason::OriginNotCache) }
        });
        let for_cache = matches!(phase, CachePhase::Miss | CachePhase::Stale | CachePhase::Bypass);
        prop_assert_eq!(asked.get(), for_cache && status != 304 && !no_store);
        match decision {
            Store::Write { from_bypass, .. } => {
                prop_assert!(for_cache && cacheable && !no_store && status != 304 && length <= 10);
                prop_assert_eq!(from_bypass, phase == CachePhase::Bypass);
                if from_bypass { prop_assert!(!head && status == 200); }
            }
            Store::Refuse { action, reason } => {
                prop_assert_eq!(action == Refusal::AlreadyDisabled, !for_cache);
                if action == Refusal::RetryUnderLock {
                    prop_assert!(status >= 500 && reason == NoCacheReason::OriginNotCache);
                }
            }
        }
    }

    /// A failed upstream is replaced by a stale entry only in the `Stale` phase and only with
    /// the hook's consent.
    #[test]
    fn stale_replaces_errors_only_when_allowed(
        phase in phase_strategy(), window: bool, disconnect: bool, hook: bool,
    ) {
        let got = on_upstream_error(phase, window, disconnect, || hook);
        prop_assert_eq!(got.is_some(), phase == CachePhase::Stale && (window || disconnect) && hook);
        if got == Some(HitKind::StaleOnDisconnect) { prop_assert!(!window); }
    }
}
