//! Two `larder` binaries with `--storage memory+redis://…`: each serves hot objects from its
//! own memory, fills misses from the shared Redis before going to the origin, purges reach
//! Redis, and a Redis outage costs neither answers nor a warning per request.

use std::time::Duration;

use http::Method;

use larder_testkit::{Got, LarderProcess, Origin, RedisServer, free_port, respond, send};

/// One proxy of the fleet.
struct Member {
    listen: String,
    admin: String,
    process: LarderProcess,
}

impl Member {
    fn start(origin: &Origin, redis: &RedisServer) -> Self {
        let listen = format!("127.0.0.1:{}", free_port());
        let admin = format!("127.0.0.1:{}", free_port());
        let storage = format!("memory+{}", redis.url());
        let process = LarderProcess::start(
            env!("CARGO_BIN_EXE_larder"),
            &[
                "--upstream",
                &origin.uri(),
                "--listen",
                &listen,
                "--admin",
                &admin,
                "--storage",
                &storage,
                "--cache-size",
                "1048576",
                "--purge-token",
                "t",
            ],
        );
        Member {
            listen,
            admin,
            process,
        }
    }

    /// `path` as a load balancer in front of the fleet sends it: the same `Host` whichever
    /// member gets it (the cache key includes the host).
    async fn get(&self, path: &str) -> Got {
        let url = format!("http://{}{path}", self.listen);
        send(Method::GET, &url, &[("host", "fleet.test")]).await
    }

    async fn purge(&self, path: &str) -> Got {
        let url = format!("http://{}{path}", self.listen);
        let purge = Method::from_bytes(b"PURGE").unwrap();
        send(
            purge,
            &url,
            &[("host", "fleet.test"), ("authorization", "Bearer t")],
        )
        .await
    }

    /// A sample from `/metrics` (`larder_tiered_*` and `larder_redis_*` included).
    async fn metric(&self, name: &str) -> u64 {
        larder_testkit::metric(&self.admin, name).await
    }

    /// Waits until the sample `name` reaches `value` (a member can send the whole body before
    /// it finishes storing or promoting it).
    async fn wait_metric(&self, name: &str, value: u64) {
        for _ in 0..250 {
            if self.metric(name).await >= value {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{name} stayed at {}, not {value}", self.metric(name).await);
    }

    /// The log lines at WARN or ERROR level so far.
    fn warnings(&self) -> Vec<String> {
        self.process.warnings()
    }

    /// Whether the process is still running, and its log has no panic.
    fn is_healthy(&mut self) -> bool {
        self.process.is_healthy()
    }
}

/// Waits until Redis holds `n` entries (a member can answer before its write is published).
async fn wait_entries(redis: &RedisServer, n: usize) {
    for _ in 0..250 {
        if redis.count_keys("larder:*:m") == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "redis holds {} entries, not {n}",
        redis.count_keys("larder:*:m")
    );
}

/// How many requests for `path` reached the origin.
fn origin_hits(origin: &Origin, path: &str) -> usize {
    (0..origin.hits())
        .filter(|&i| origin.request(i).uri.path() == path)
        .count()
}

fn assert_shared(got: &Got, hit: bool) {
    assert_eq!(
        (got.status.as_u16(), got.text().as_str()),
        (200, "shared"),
        "{}",
        got.cache_status()
    );
    assert_eq!(got.ours().hit, hit, "{}", got.cache_status());
}

// One scenario walked in order: each step starts from what the previous one left.
#[allow(clippy::too_many_lines)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_tiers_share_redis_and_ride_out_its_outage() {
    let mut redis = RedisServer::start();
    let origin =
        Origin::start(|_, _| async { respond(200, &[("cache-control", "max-age=60")], "shared") })
            .await;
    let mut a = Member::start(&origin, &redis);
    let mut b = Member::start(&origin, &redis);

    // A misses and stores in both tiers: the next request on A is a hit from its memory.
    assert_shared(&a.get("/object").await, false);
    wait_entries(&redis, 1).await;
    a.wait_metric("larder_redis_writes_stored_total", 1).await;
    assert_shared(&a.get("/object").await, true);
    assert_eq!(a.metric("larder_tiered_front_hits_total").await, 1);
    assert_eq!(a.metric("larder_tiered_back_hits_total").await, 0);

    // B has its own memory tier but shares Redis: a hit from Redis, then from its memory.
    assert_shared(&b.get("/object").await, true);
    assert_eq!(b.metric("larder_tiered_back_hits_total").await, 1);
    b.wait_metric("larder_tiered_promotions_total", 1).await;
    assert_shared(&b.get("/object").await, true);
    assert_eq!(b.metric("larder_tiered_front_hits_total").await, 1);
    assert_eq!(b.metric("larder_tiered_promotions_total").await, 1);
    assert_eq!(origin_hits(&origin, "/object"), 1);

    // PURGE through A removes the object from Redis and from A's memory...
    assert_eq!(a.purge("/object").await.status.as_u16(), 200);
    assert_eq!(redis.count_keys("larder:*:m"), 0);
    assert_shared(&a.get("/object").await, false);
    assert_eq!(origin_hits(&origin, "/object"), 2);
    // ...while B keeps its local copy (no local TTL configured), as documented.
    assert_shared(&b.get("/object").await, true);
    assert_eq!(origin_hits(&origin, "/object"), 2);
    wait_entries(&redis, 1).await;

    // Redis dies: every request is still answered. B serves its local copy; new objects
    // come from the origin once per member and are then hits from memory.
    redis.stop();
    for round in 0..3 {
        assert_shared(&b.get("/object").await, true);
        for i in 0..8 {
            let path = format!("/down-{i}");
            for member in [&a, &b] {
                assert_shared(&member.get(&path).await, round > 0);
            }
        }
    }
    assert_eq!(origin_hits(&origin, "/object"), 2);
    for i in 0..8 {
        assert_eq!(
            origin_hits(&origin, &format!("/down-{i}")),
            2,
            "one per member"
        );
    }
    for member in [&mut a, &mut b] {
        assert!(member.is_healthy());
        // Every miss asked Redis, found it unreachable and answered as a miss; after a few
        // failed calls the breaker stopped sending them at all.
        assert_eq!(
            member.metric("larder_tiered_back_unavailable_total").await,
            8
        );
        assert!(member.metric("larder_redis_skipped_total").await >= 1);
        // One line for the outage, not one per request.
        let warnings = member.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(
            warnings[0].contains("redis cache tier unreachable"),
            "{warnings:#?}"
        );
    }

    // Redis is back (empty): after the breaker's cool-down, misses are stored there again and
    // the other member finds them.
    redis.restart();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut stored = false;
    for i in 0..50 {
        a.get(&format!("/after-{i}")).await;
        if redis.count_keys("larder:*:m") > 0 {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stored, "caching in redis did not resume");
    for member in [&mut a, &mut b] {
        assert!(member.is_healthy());
        assert_eq!(member.warnings().len(), 1, "{:#?}", member.warnings());
    }
    let log = a.process.log().join("\n");
    assert!(log.contains("redis cache tier reachable again"), "{log}");
}

/// The meta the filter builds (without `Set-Cookie`) is what both tiers store: a member that
/// finds the entry in Redis, or in its own memory, never hands out the filling client's cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_tier_replays_a_cookie() {
    let redis = RedisServer::start();
    let origin = Origin::start(|_, n| async move {
        let cookie = format!("session={n}");
        let mut resp = respond(200, &[("cache-control", "public, max-age=60")], "shared");
        resp.headers_mut()
            .insert("set-cookie", cookie.parse().unwrap());
        resp
    })
    .await;
    let a = Member::start(&origin, &redis);
    let b = Member::start(&origin, &redis);
    let fill = a.get("/login").await;
    assert_eq!(fill.header("set-cookie"), Some("session=0"));
    wait_entries(&redis, 1).await;
    let from_redis = b.get("/login").await;
    assert_shared(&from_redis, true);
    assert_eq!(from_redis.header("set-cookie"), None, "from Redis");
    b.wait_metric("larder_tiered_promotions_total", 1).await;
    for (member, tier) in [(&a, "a's memory"), (&b, "b's memory")] {
        let hit = member.get("/login").await;
        assert_shared(&hit, true);
        assert_eq!(hit.header("set-cookie"), None, "from {tier}");
    }
    assert_eq!(origin.hits(), 1);
}
