//! A miniature proxy that drives `HttpCache` the way larder-proxy (and pingora-proxy) do, over
//! an in-process origin, executing the same decisions (`larder_cache::decide`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use larder_cache::age::ResponseTimes;
use larder_cache::decide::{
    self, FoundAction, FoundFacts, Refusal, StaleAnswer, Store, StoreFacts,
};
use larder_cache::eviction::EvictionManager;
use larder_cache::filters::{RespCacheable, resp_cacheable_targeted};
use larder_cache::lock::{CacheKeyLockImpl, CacheLock};
use larder_cache::request::RequestDirectives;
use larder_cache::variance::variance_from_request;
use larder_cache::{
    CacheKey, CacheMetaDefaults, CacheOptionOverrides, CachePhase, ForcedFreshness, HttpCache,
    MemCache, NoCacheReason, ResponseHeader, Storage,
};
use parking_lot::Mutex;

pub(crate) static DEFAULTS: CacheMetaDefaults = CacheMetaDefaults::STRICT;

/// What the origin answers: a response (header fields and body chunks) or a failure.
#[derive(Clone, Debug)]
pub(crate) enum Answer {
    Response {
        status: u16,
        headers: Vec<(&'static str, String)>,
        chunks: Vec<&'static [u8]>,
    },
    Error,
}

pub(crate) fn ok(headers: &[(&'static str, &str)], body: &'static [u8]) -> Answer {
    Answer::Response {
        status: 200,
        headers: headers.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
        chunks: vec![body],
    }
}

pub(crate) fn not_modified(headers: &[(&'static str, &str)]) -> Answer {
    Answer::Response {
        status: 304,
        headers: headers.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
        chunks: vec![],
    }
}

/// An origin returning queued answers (the last one repeats) and recording the requests it
/// got. A delay makes it slow, so concurrent requests overlap.
#[derive(Clone, Default)]
pub(crate) struct Origin {
    answers: Arc<Mutex<Vec<Answer>>>,
    pub(crate) requests: Arc<Mutex<Vec<HeaderMap>>>,
    calls: Arc<AtomicUsize>,
    delay: Option<Duration>,
}

impl Origin {
    pub(crate) fn new(answers: Vec<Answer>) -> Self {
        Self {
            answers: Arc::new(Mutex::new(answers)),
            ..Self::default()
        }
    }

    pub(crate) fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    pub(crate) fn set(&self, answers: Vec<Answer>) {
        *self.answers.lock() = answers;
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub(crate) fn last_request(&self) -> HeaderMap {
        self.requests
            .lock()
            .last()
            .cloned()
            .expect("origin was called")
    }

    async fn call(&self, headers: &HeaderMap) -> Answer {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.requests.lock().push(headers.clone());
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        let mut answers = self.answers.lock();
        if answers.len() > 1 {
            answers.remove(0)
        } else {
            answers[0].clone()
        }
    }
}

/// The shared, process-lifetime parts of the cache.
#[derive(Clone, Copy)]
pub(crate) struct Env {
    pub(crate) storage: &'static MemCache,
    /// A storage used instead of `storage`, e.g. one that fails.
    pub(crate) storage_override: Option<&'static (dyn Storage + Sync)>,
    pub(crate) lock: Option<&'static CacheKeyLockImpl>,
    pub(crate) eviction: Option<&'static (dyn EvictionManager + Sync)>,
    pub(crate) wait_timeout: Option<Duration>,
    pub(crate) max_file_size: Option<usize>,
}

impl Env {
    pub(crate) fn new() -> Self {
        Self {
            storage: Box::leak(Box::new(MemCache::new())),
            storage_override: None,
            lock: None,
            eviction: None,
            wait_timeout: None,
            max_file_size: None,
        }
    }

    pub(crate) fn with_lock(mut self, age_timeout: Duration) -> Self {
        let lock: &'static CacheLock = Box::leak(CacheLock::new_boxed(age_timeout));
        self.lock = Some(lock);
        self
    }

    pub(crate) fn cache(&self, key: &str) -> HttpCache {
        let mut cache = HttpCache::new();
        let storage: &'static (dyn Storage + Sync) = match self.storage_override {
            Some(storage) => storage,
            None => self.storage,
        };
        cache.enable(
            storage,
            self.eviction,
            None,
            self.lock,
            Some(CacheOptionOverrides::default().with_wait_timeout(self.wait_timeout)),
        );
        cache.set_cache_key(CacheKey::new("", key, ""));
        if let Some(max) = self.max_file_size {
            cache.set_max_file_size_bytes(max);
        }
        cache
    }
}

/// What the client got.
#[derive(Debug)]
pub(crate) struct Served {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    /// The phase when the response was sent.
    pub(crate) phase: CachePhase,
    /// A background revalidation, when stale-while-revalidate was used.
    pub(crate) background: Option<tokio::task::JoinHandle<Served>>,
}

pub(crate) fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).expect("valid name"),
            HeaderValue::from_str(v).expect("valid value"),
        );
    }
    h
}

async fn read_all(cache: &mut HttpCache) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(chunk) = cache.hit_handler().read_body().await.expect("hit body") {
        body.extend_from_slice(&chunk);
    }
    cache.finish_hit_handler().await.expect("finish hit");
    body
}

/// Serves the found (hit, stale or revalidated) entry, with `Age` when upstream was not used.
async fn serve_from_cache(mut cache: HttpCache) -> Served {
    let header = cache.cache_meta().response_header().clone();
    let mut headers = header.headers.clone();
    let age = cache.cache_meta().age(SystemTime::now()).as_secs();
    headers.insert(http::header::AGE, HeaderValue::from(age));
    let body = read_all(&mut cache).await;
    Served {
        status: header.status,
        headers,
        body,
        phase: cache.phase(),
        background: None,
    }
}

/// Runs one GET for `key` through the cache in front of `origin`.
pub(crate) async fn get(env: Env, key: &str, request: &HeaderMap, origin: &Origin) -> Served {
    let cache = env.cache(key);
    run(cache, request, origin, env, false).await
}

/// The proxy loop: lookup (with Vary and lock handling), then hit, stale or upstream, each
/// step decided by `larder_cache::decide` as in larder-proxy. `background_refresh` marks the
/// stale-while-revalidate task that holds the write permit: it revalidates.
pub(crate) fn run<'a>(
    mut cache: HttpCache,
    request: &'a HeaderMap,
    origin: &'a Origin,
    env: Env,
    background_refresh: bool,
) -> std::pin::Pin<Box<dyn Future<Output = Served> + Send + 'a>> {
    Box::pin(async move {
        let directives = RequestDirectives::from_headers(request);
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(rounds < 20, "lookup loop does not end");
            let found = cache.cache_lookup().await.unwrap_or(None);
            let action = if let Some((meta, hit)) = found {
                if cache.cache_key().get_variance_key().is_none()
                    && let Some(variance) = variance_from_request(meta.headers(), request)
                    && !cache.cache_vary_lookup(variance, &meta)
                {
                    continue;
                }
                let reuse = directives.reuse(&meta, &[], SystemTime::now());
                let forced = background_refresh.then_some(ForcedFreshness::ForceExpired);
                let entry = decide::entry(reuse, || forced).expect("no only-if-cached here");
                cache.cache_found(meta, hit, entry.hit_status);
                decide::found(
                    FoundFacts {
                        phase: cache.phase(),
                        must_revalidate: entry.must_revalidate,
                        locked: cache.is_cache_locked(),
                        lock_writer: cache.is_cache_lock_writer(),
                        can_serve_stale_updating: cache.can_serve_stale_updating(),
                        no_store: directives.no_store(),
                    },
                    || true,
                )
            } else {
                decide::not_found(cache.is_cache_locked())
            };
            match action {
                FoundAction::Serve => return serve_from_cache(cache).await,
                FoundAction::ServeStale => {
                    cache.set_stale_updating();
                    return serve_from_cache(cache).await;
                }
                FoundAction::ServeStaleWithoutRefresh => {
                    cache.release_write_lock(NoCacheReason::Deferred);
                    cache.set_stale_updating();
                    return serve_from_cache(cache).await;
                }
                FoundAction::ServeStaleAndRefresh => {
                    let mut refresh = env.cache(cache.cache_key().primary_key_str().unwrap_or(""));
                    if cache.is_cache_lock_writer() {
                        refresh.set_write_lock(cache.take_write_lock().0);
                    }
                    let request = request.clone();
                    let origin = origin.clone();
                    let background =
                        tokio::spawn(
                            async move { run(refresh, &request, &origin, env, true).await },
                        );
                    cache.set_stale_updating();
                    let mut served = serve_from_cache(cache).await;
                    served.background = Some(background);
                    return served;
                }
                FoundAction::Wait => match decide::after_wait(cache.cache_lock_wait().await) {
                    Ok(()) => {}
                    Err(reason) => {
                        cache.disable(reason);
                        break;
                    }
                },
                FoundAction::Revalidate => break,
                FoundAction::Miss => {
                    cache.cache_miss();
                    break;
                }
            }
        }
        upstream(cache, request, origin, directives).await
    })
}

// A straight-line transcription of the proxy's upstream step reads best in one piece.
#[allow(clippy::too_many_lines)]
async fn upstream(
    mut cache: HttpCache,
    request: &HeaderMap,
    origin: &Origin,
    directives: RequestDirectives,
) -> Served {
    let phase = cache.phase();
    let mut method = Method::GET;
    let mut upstream_headers = request.clone();
    let stored = cache.maybe_cache_meta().map(|m| m.headers().clone());
    decide::upstream_request(phase, &mut method, &mut upstream_headers, stored.as_ref());
    let request_time = SystemTime::now();
    let answer = origin.call(&upstream_headers).await;
    let times = ResponseTimes {
        request_time,
        response_time: SystemTime::now(),
    };
    let Answer::Response {
        status,
        headers,
        chunks,
    } = answer
    else {
        if decide::on_upstream_error(phase, cache.can_serve_stale_error(), false, || true).is_some()
        {
            cache.release_write_lock(NoCacheReason::UpstreamError);
            return serve_from_cache(cache).await;
        }
        if !matches!(phase, CachePhase::Disabled(_)) {
            cache.disable(NoCacheReason::UpstreamError);
        }
        return Served {
            status: StatusCode::BAD_GATEWAY,
            headers: HeaderMap::new(),
            body: Vec::new(),
            phase: cache.phase(),
            background: None,
        };
    };
    let mut header = ResponseHeader::new(StatusCode::from_u16(status).expect("valid status"));
    for (n, v) in &headers {
        header.append_header(*n, v.as_str()).expect("valid header");
    }
    let authorization = request.contains_key(http::header::AUTHORIZATION);
    if phase == CachePhase::Stale {
        match decide::on_stale_response(header.status, cache.can_serve_stale_error(), || true) {
            StaleAnswer::NotModified => {
                let merged = cache.revalidate_merge_header(&header);
                let filter = || {
                    resp_cacheable_targeted(merged.clone(), authorization, &[], &DEFAULTS, times)
                };
                match decide::revalidated(directives.no_store(), filter) {
                    RespCacheable::Cacheable(meta) => {
                        cache
                            .revalidate_cache_meta(meta)
                            .await
                            .expect("update meta");
                    }
                    RespCacheable::Uncacheable(reason) => {
                        cache.revalidate_uncacheable(merged, reason);
                    }
                }
                return serve_from_cache(cache).await;
            }
            StaleAnswer::ServeStale => {
                cache.release_write_lock(NoCacheReason::UpstreamError);
                return serve_from_cache(cache).await;
            }
            StaleAnswer::Replace => {}
        }
    }
    let facts = StoreFacts {
        phase,
        method: &Method::GET,
        status: header.status,
        headers: &header.headers,
        no_store: directives.no_store(),
        max_file_size: None,
    };
    let filter = || resp_cacheable_targeted(header.clone(), authorization, &[], &DEFAULTS, times);
    let mut write = false;
    match decide::store(facts, filter) {
        Store::Write { meta, from_bypass } => {
            assert!(!from_bypass, "the driver never bypasses");
            let variance = variance_from_request(meta.headers(), request);
            cache.set_cache_meta(meta);
            cache.update_variance(variance);
            cache.set_miss_handler().await.expect("miss handler");
            write = true;
        }
        Store::Refuse { reason, action } => match action {
            Refusal::RetryUnderLock => {
                cache.release_write_lock(NoCacheReason::UpstreamError);
                cache.disable(reason);
            }
            Refusal::Remember => {
                cache.response_became_uncacheable(reason);
                cache.disable(reason);
            }
            Refusal::Disable => cache.disable(reason),
            Refusal::AlreadyDisabled => {}
        },
    }
    let mut body = Vec::new();
    let last = chunks.len().saturating_sub(1);
    for (i, chunk) in chunks.iter().enumerate() {
        body.extend_from_slice(chunk);
        if write {
            if !cache.track_body_bytes_for_max_file_size(chunk.len()) {
                cache.disable(NoCacheReason::ResponseTooLarge);
                write = false;
                continue;
            }
            let handler = cache.miss_handler().expect("miss handler set");
            handler
                .write_body(Bytes::from_static(chunk), i == last)
                .await
                .expect("write body");
        }
    }
    if write {
        if chunks.is_empty() {
            let handler = cache.miss_handler().expect("miss handler set");
            handler.write_body(Bytes::new(), true).await.expect("eof");
        }
        cache.finish_miss_handler().await.expect("finish miss");
    }
    Served {
        status: header.status,
        headers: header.headers,
        body,
        phase: cache.phase(),
        background: None,
    }
}
