//! Tests of the `lock` module.

use std::sync::atomic::AtomicUsize;

use super::*;

fn key(path: &str) -> CacheKey {
    CacheKey::new("", path, "")
}

fn write(l: Locked) -> WritePermit {
    match l {
        Locked::Write(w) => w,
        Locked::Read(_) => panic!("expected a write permit"),
    }
}

fn read(l: Locked) -> ReadLock {
    match l {
        Locked::Read(r) => r,
        Locked::Write(_) => panic!("expected a read lock"),
    }
}

#[test]
fn lock_status_round_trips_through_u8() {
    for s in [
        LockStatus::Waiting,
        LockStatus::Done,
        LockStatus::TransientError,
        LockStatus::GiveUp,
        LockStatus::Dangling,
        LockStatus::WaitTimeout,
        LockStatus::AgeTimeout,
    ] {
        assert_eq!(LockStatus::from(u8::from(s)), s);
        assert_eq!(s.to_string(), s.as_str());
    }
    assert_eq!(LockStatus::from(7), LockStatus::GiveUp);
    assert_eq!(LockStatus::from(255), LockStatus::GiveUp);
}

#[tokio::test]
async fn first_locker_writes_others_read_until_release() {
    let lock = CacheLock::new(Duration::from_secs(100));
    let k = key("a");
    let permit = write(lock.lock(&k, false));
    assert!(!permit.stale_writer());
    let r = read(lock.lock(&k, false));
    assert!(r.locked());
    assert_eq!(r.lock_status(), LockStatus::Waiting);
    assert!(!lock.lock(&k, false).is_write());

    lock.release(&k, permit, LockStatus::Done);
    r.wait().await;
    assert!(!r.locked());
    assert_eq!(r.lock_status(), LockStatus::Done);
    assert!(lock.is_empty());
    // The next miss writes again.
    let again = lock.lock(&k, true);
    assert!(again.is_write());
    assert!(write(again).stale_writer());
}

#[tokio::test]
async fn variants_and_keys_lock_separately() {
    let lock = CacheLock::new(Duration::from_secs(100));
    let a = key("a");
    let mut a_variant = key("a");
    a_variant.set_variance_key([7; 16]);
    let _w1 = write(lock.lock(&a, false));
    let _w2 = write(lock.lock(&a_variant, false));
    let _w3 = write(lock.lock(&key("b"), false));
    assert_eq!(lock.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn readers_are_woken_by_release_not_by_time() {
    let lock = Arc::new(CacheLock::new(Duration::from_hours(1)));
    let k = key("a");
    let permit = write(lock.lock(&k, false));
    let start = Instant::now();
    let mut readers = Vec::new();
    for _ in 0..8 {
        let r = read(lock.lock(&k, false));
        readers.push(tokio::spawn(async move {
            r.wait().await;
            r.lock_status()
        }));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(readers.iter().all(|h| !h.is_finished()));
    lock.release(&k, permit, LockStatus::GiveUp);
    for h in readers {
        assert_eq!(h.await.unwrap(), LockStatus::GiveUp);
    }
    // Woken by the release, long before the age timeout.
    assert!(start.elapsed() < Duration::from_hours(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_on_other_threads_are_woken() {
    let lock = Arc::new(CacheLock::new(Duration::from_hours(1)));
    let k = key("a");
    let permit = write(lock.lock(&k, false));
    let mut readers = Vec::new();
    for _ in 0..16 {
        let r = read(lock.lock(&k, false));
        readers.push(tokio::spawn(async move {
            r.wait().await;
            r.lock_status()
        }));
    }
    tokio::task::yield_now().await;
    lock.release(&k, permit, LockStatus::Done);
    for h in readers {
        let status = tokio::time::timeout(Duration::from_secs(30), h)
            .await
            .expect("reader not woken")
            .unwrap();
        assert_eq!(status, LockStatus::Done);
    }
}

#[tokio::test]
async fn wait_after_release_returns_at_once() {
    let lock = CacheLock::new(Duration::from_hours(1));
    let k = key("a");
    let permit = write(lock.lock(&k, false));
    let r = read(lock.lock(&k, false));
    lock.release(&k, permit, LockStatus::TransientError);
    r.wait().await;
    assert_eq!(r.lock_status(), LockStatus::TransientError);
}

#[tokio::test(start_paused = true)]
async fn age_timeout_lets_readers_compete_again() {
    let lock = CacheLock::new(Duration::from_secs(2));
    let k = key("a");
    let old = write(lock.lock(&k, false));
    let r = read(lock.lock(&k, false));
    assert!(!r.expired());
    let start = Instant::now();
    r.wait().await;
    assert!(start.elapsed() >= Duration::from_secs(2));
    assert!(r.expired());
    assert!(r.locked());
    assert_eq!(r.lock_status(), LockStatus::AgeTimeout);
    assert_eq!(old.lock_status(), LockStatus::AgeTimeout);

    // The aged-out writer is replaced by a new one.
    let new = write(lock.lock(&k, false));
    let r2 = read(lock.lock(&k, false));
    // The old writer finishing does not release the new writer's lock.
    lock.release(&k, old, LockStatus::Done);
    assert_eq!(r2.lock_status(), LockStatus::Waiting);
    assert!(!lock.lock(&k, false).is_write());
    lock.release(&k, new, LockStatus::Done);
    r2.wait().await;
    assert_eq!(r2.lock_status(), LockStatus::Done);
    assert!(lock.is_empty());
}

#[tokio::test(start_paused = true)]
async fn reader_wait_timeout_is_the_callers_timeout() {
    let lock = CacheLock::new(Duration::from_mins(1));
    let k = key("a");
    let _w = write(lock.lock(&k, false));
    let r = read(lock.lock(&k, false));
    let res = tokio::time::timeout(Duration::from_secs(1), r.wait()).await;
    assert!(res.is_err());
    assert_eq!(r.lock_status(), LockStatus::Waiting);
}

#[tokio::test]
async fn dropped_permit_dangles_and_wakes_readers() {
    let lock = CacheLock::new(Duration::from_hours(1));
    let k = key("a");
    let permit = write(lock.lock(&k, false));
    let r = read(lock.lock(&k, false));
    let waiter = tokio::spawn(async move {
        r.wait().await;
        r.lock_status()
    });
    tokio::task::yield_now().await;
    drop(permit);
    assert_eq!(waiter.await.unwrap(), LockStatus::Dangling);
    assert!(lock.is_empty());
    assert!(lock.lock(&k, false).is_write());
}

#[tokio::test]
async fn cancelled_writer_task_does_not_strand_readers() {
    let lock = Arc::new(CacheLock::new(Duration::from_hours(1)));
    let k = key("a");
    let permit = write(lock.lock(&k, false));
    let writer = tokio::spawn(async move {
        let _permit = permit;
        std::future::pending::<()>().await;
    });
    let r = read(lock.lock(&k, false));
    writer.abort();
    assert!(writer.await.unwrap_err().is_cancelled());
    r.wait().await;
    assert_eq!(r.lock_status(), LockStatus::Dangling);
}

#[tokio::test]
async fn unlock_is_idempotent_and_waiting_is_not_an_outcome() {
    let (mut permit, stub) = WritePermit::new(Duration::from_secs(10), true);
    let r = stub.read_lock();
    assert!(r.stale_writer());
    permit.unlock(LockStatus::WaitTimeout);
    permit.unlock(LockStatus::Done);
    drop(permit);
    r.wait().await;
    assert_eq!(r.lock_status(), LockStatus::TransientError);
}

#[test]
fn permit_outliving_its_table_is_harmless() {
    let lock = CacheLock::new(Duration::from_secs(10));
    let k = key("a");
    let permit = write(lock.lock(&k, false));
    drop(lock);
    drop(permit);
}

#[test]
fn lock_types_are_thread_safe() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<CacheLock>();
    send_sync::<WritePermit>();
    send_sync::<ReadLock>();
    send_sync::<LockStub>();
    let lock: &'static CacheKeyLockImpl = Box::leak(CacheLock::new_boxed(Duration::from_secs(1)));
    assert!(lock.lock(&key("a"), false).is_write());
}

#[test]
fn default_custom_lock_status_gives_up() {
    let lock = CacheLock::new(Duration::from_secs(10));
    let dyn_lock: &CacheKeyLockImpl = &lock;
    assert_eq!(dyn_lock.custom_lock_status("x"), LockStatus::GiveUp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_lockers_elect_exactly_one_writer() {
    for round in 0..20 {
        let lock = Arc::new(CacheLock::new(Duration::from_hours(1)));
        let writers = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(tokio::sync::Barrier::new(32));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (lock, writers, barrier) = (lock.clone(), writers.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                let k = key(&format!("k{round}"));
                barrier.wait().await;
                match lock.lock(&k, false) {
                    Locked::Write(p) => {
                        writers.fetch_add(1, Ordering::SeqCst);
                        // Hold the permit until every task has locked.
                        barrier.wait().await;
                        lock.release(&k, p, LockStatus::Done);
                        LockStatus::Done
                    }
                    Locked::Read(r) => {
                        barrier.wait().await;
                        r.wait().await;
                        r.lock_status()
                    }
                }
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), LockStatus::Done);
        }
        assert_eq!(writers.load(Ordering::SeqCst), 1);
        assert!(lock.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_error_elects_one_new_writer() {
    let lock = Arc::new(CacheLock::new(Duration::from_hours(1)));
    let k = key("a");
    let permit = write(lock.lock(&k, false));
    let new_writers = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(9));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let r = read(lock.lock(&k, false));
        let (lock, new_writers, barrier) = (lock.clone(), new_writers.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            r.wait().await;
            assert_eq!(r.lock_status(), LockStatus::TransientError);
            let again = lock.lock(&key("a"), false);
            if again.is_write() {
                new_writers.fetch_add(1, Ordering::SeqCst);
            }
            barrier.wait().await;
            drop(again);
        }));
    }
    lock.release(&k, permit, LockStatus::TransientError);
    barrier.wait().await;
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(new_writers.load(Ordering::SeqCst), 1);
}
