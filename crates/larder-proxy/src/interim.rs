//! Interim (1xx) responses from the origin, forwarded to HTTP/1.1 clients.
//!
//! hyper's server has no API to send a 1xx response (it writes only its own `100 Continue`), so
//! the proxy writes them beside it. [`InterimIo`] wraps a client connection's socket;
//! [`InterimService`] opens an [`Interim`] handle for every HTTP/1.1 request, makes it the
//! [`current`] one (a task-local) while the service's future for that request is polled, and
//! closes it when that future completes. The upstream client, called from that future, finds
//! the handle, registers `hyper::ext::on_informational` and [`Interim::push`]es each 1xx the
//! origin sends. The socket then writes the serialized heads ahead of hyper's own bytes, and
//! the push wakes the connection's task so an early hint goes out while the final response is
//! still being fetched. A task the service spawns (a stale-while-revalidate refresh) does not
//! inherit the task-local, so a background fetch never sends hints to a client already
//! answered; a handle kept beyond its request is inert anyway.
//!
//! # Why the bytes never land inside another message
//!
//! This relies on how hyper 1.x's HTTP/1 server drives its socket:
//!
//! 1. The service for a request is called while hyper reads its head (`Server::recv_msg`), and
//!    hyper reads the next head only once the previous request and response are both complete
//!    (`Conn::can_read_head` wants `Reading::Init`, which `State::try_keep_alive` restores only
//!    when reading and writing both reached `KeepAlive`). The previous response's last bytes
//!    may still sit in hyper's write buffer then.
//! 2. hyper calls the socket's `poll_flush` only after writing out its whole buffer
//!    (`Buffered::poll_flush`), and its dispatcher flushes on every turn of its loop.
//! 3. While a request's service future runs, the only bytes hyper writes are a complete
//!    `100 Continue`; the final head is encoded only after the future completes.
//!
//! So a flush after the handle was opened ("armed") means everything hyper wrote before is
//! out, and from then on hyper's byte stream is at a message boundary at every flush and at
//! the first write after one ("clean"). Queued interim bytes go out in `poll_flush` while the
//! request is open, or at a clean, armed write (the final head following a queued hint); a
//! queue that misses its chance once the handle is closed is dropped, never sent late.
//!
//! Not covered: HTTP/1.0 clients (RFC 9110 §15.2 forbids sending them a 1xx) and HTTP/2
//! clients (hyper's HTTP/2 server offers no way to send one) get no handle, and neither do
//! requests answered from the cache. An interim response carries no `Via`: RFC 9110 §7.6.3
//! lets a gateway leave it out of responses.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use futures_util::task::AtomicWaker;
use http::header::HeaderMap;
use http::{Request, StatusCode, Version};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::futures::TaskLocalFuture;

use crate::headers;

/// The most interim bytes queued for one connection; a push beyond it is dropped, so an origin
/// sending 1xx responses faster than the client reads them cannot grow memory.
const MAX_QUEUED: usize = 64 * 1024;

tokio::task_local! {
    /// The handle of the request whose service future is being polled, if it has one.
    static CURRENT: Option<Interim>;
}

/// The handle of the request being served on this task: set while [`InterimService`]'s
/// future for an HTTP/1.1 request is polled, `None` elsewhere.
pub(crate) fn current() -> Option<Interim> {
    CURRENT.try_with(Clone::clone).ok().flatten()
}

/// State shared by a connection's socket, its service and the handles of its requests.
#[derive(Debug, Default)]
struct Shared {
    /// Whether `state.queue` holds bytes: lets every write skip the lock when it does not.
    pending: AtomicBool,
    /// How many times the socket's `poll_flush` was called (written only by [`InterimIo`]).
    flushes: AtomicU64,
    /// The connection task, woken by a push so the bytes go out without waiting for hyper.
    waker: AtomicWaker,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The number of the newest request given a handle.
    request: u64,
    /// Whether that request's service future is still running.
    open: bool,
    /// `flushes` when that request was opened.
    opened_at: u64,
    /// Serialized interim heads waiting to be written.
    queue: Vec<u8>,
}

/// A request's handle for sending interim responses to its client ([`current`] while an
/// HTTP/1.1 request served by [`crate::server::serve`] is being answered).
///
/// Pushes are accepted only until the service's future for that request completes; a clone
/// kept longer (by the upstream client's callback, say) is inert after that.
#[derive(Clone, Debug)]
pub(crate) struct Interim {
    shared: Arc<Shared>,
    request: u64,
}

impl Interim {
    /// Queues the interim response `status` with `fields` (hop-by-hop fields removed, RFC 9110
    /// §7.6.1) and wakes the connection. Returns whether it was queued: not for a final
    /// status, `100 Continue` (hyper answers `Expect` itself) or `101` (an upgrade), once the
    /// request's answer was produced, or when the connection's queue is full.
    pub(crate) fn push(&self, status: StatusCode, fields: &HeaderMap) -> bool {
        if !status.is_informational()
            || status == StatusCode::CONTINUE
            || status == StatusCode::SWITCHING_PROTOCOLS
            || !self.is_open()
        {
            return false;
        }
        let mut fields = fields.clone();
        headers::remove_hop_by_hop(&mut fields);
        let head = serialize(status, &fields);
        {
            let mut state = self.shared.state.lock();
            if state.request != self.request
                || !state.open
                || state.queue.len() + head.len() > MAX_QUEUED
            {
                return false;
            }
            state.queue.extend_from_slice(&head);
            self.shared.pending.store(true, Ordering::Release);
        }
        self.shared.waker.wake();
        true
    }

    /// Whether the request's answer is still being produced.
    fn is_open(&self) -> bool {
        let state = self.shared.state.lock();
        state.request == self.request && state.open
    }

    fn close(&self) {
        let mut state = self.shared.state.lock();
        if state.request == self.request {
            state.open = false;
        }
    }
}

/// An HTTP/1 head for an interim response: `HTTP/1.1 103 Early Hints`, the fields, a blank
/// line. Field names and values come from a parsed `HeaderMap`, so they hold no CR or LF.
fn serialize(status: StatusCode, fields: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + fields.len() * 48);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in fields {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A client connection's socket that writes queued interim responses ahead of hyper's bytes.
#[derive(Debug)]
pub(crate) struct InterimIo<T> {
    inner: T,
    shared: Arc<Shared>,
    /// Interim bytes taken from the queue; they go out before any more of hyper's bytes.
    out: Vec<u8>,
    written: usize,
    /// No byte of hyper's was written since the last `poll_flush`.
    clean: bool,
    flushes: u64,
}

impl<T> InterimIo<T> {
    /// Wraps `inner`; `service` gives the connection's requests their handles.
    pub(crate) fn new<S>(inner: T, service: S) -> (Self, InterimService<S>) {
        let shared = Arc::new(Shared::default());
        let io = Self {
            inner,
            shared: Arc::clone(&shared),
            out: Vec::new(),
            written: 0,
            clean: true,
            flushes: 0,
        };
        (
            io,
            InterimService {
                inner: service,
                shared,
            },
        )
    }

    /// Moves the queue into `out` when it may be written now, drops it when it never may.
    fn take_queue(&mut self, at_flush: bool) {
        let mut state = self.shared.state.lock();
        if state.queue.is_empty() {
            return;
        }
        let armed = self.flushes > state.opened_at;
        if (at_flush && state.open) || (!at_flush && self.clean && armed) {
            std::mem::swap(&mut self.out, &mut state.queue);
            self.written = 0;
        } else if !at_flush && !state.open {
            // hyper is writing the final response head: too late for these.
            state.queue.clear();
        }
        self.shared
            .pending
            .store(!state.queue.is_empty(), Ordering::Release);
    }
}

impl<T: AsyncWrite + Unpin> InterimIo<T> {
    /// Writes the interim bytes due before hyper's next bytes.
    fn poll_interim(&mut self, cx: &mut Context<'_>, at_flush: bool) -> Poll<io::Result<()>> {
        if self.out.is_empty() && self.shared.pending.load(Ordering::Acquire) {
            self.take_queue(at_flush);
        }
        while self.written < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.out.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    fn wrote(&mut self, result: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = result
            && n > 0
        {
            self.clean = false;
        }
        result
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for InterimIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for InterimIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_interim(cx, false))?;
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_interim(cx, false))?;
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // hyper flushes only with its own buffer empty: a message boundary (see the module
        // docs). Counting flushes arms the open request; the waker lets a push wake this task.
        this.flushes += 1;
        this.shared.flushes.store(this.flushes, Ordering::Release);
        this.clean = true;
        this.shared.waker.register(cx.waker());
        ready!(this.poll_interim(cx, true))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A connection's hyper service: opens an [`Interim`] handle for each HTTP/1.1 request, makes
/// it [`current`] while the inner service's future for that request is polled, and closes it
/// when that future completes or is dropped.
#[derive(Debug)]
pub(crate) struct InterimService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> InterimService<S> {
    fn open(&self) -> Interim {
        let mut state = self.shared.state.lock();
        state.request += 1;
        state.open = true;
        state.opened_at = self.shared.flushes.load(Ordering::Acquire);
        // Anything left belongs to an earlier request and can no longer be sent in order.
        state.queue.clear();
        self.shared.pending.store(false, Ordering::Release);
        Interim {
            shared: Arc::clone(&self.shared),
            request: state.request,
        }
    }
}

impl<S, B> hyper::service::Service<Request<B>> for InterimService<S>
where
    S: hyper::service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TaskLocalFuture<Option<Interim>, Closing<S::Future>>;

    fn call(&self, req: Request<B>) -> Self::Future {
        // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client. HTTP/2 has no way to send one here.
        let handle = (req.version() == Version::HTTP_11).then(|| self.open());
        let closing = Closing {
            inner: self.inner.call(req),
            guard: handle.clone().map(CloseOnDrop),
        };
        CURRENT.scope(handle, closing)
    }
}

/// Closes a request's handle when dropped.
#[derive(Debug)]
struct CloseOnDrop(Interim);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

pin_project_lite::pin_project! {
    /// The future of [`InterimService`]: the inner future, closing the request's handle as
    /// soon as it completes (before hyper writes the final response head) or is dropped.
    #[derive(Debug)]
    pub(crate) struct Closing<F> {
        #[pin]
        inner: F,
        guard: Option<CloseOnDrop>,
    }
}

impl<F: Future> Future for Closing<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = ready!(this.inner.poll(cx));
        this.guard.take();
        Poll::Ready(output)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::HeaderValue;
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A service whose future notes the current handle, and whether a task it spawns sees
    /// one, then says it got there and waits for `finish` before answering.
    #[derive(Clone, Debug, Default)]
    struct Recorder {
        seen: Arc<Mutex<Option<Interim>>>,
        spawned_saw_one: Arc<AtomicBool>,
        reached: Arc<tokio::sync::Notify>,
        finish: Arc<tokio::sync::Notify>,
    }

    impl hyper::service::Service<Request<()>> for Recorder {
        type Response = ();
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<(), Infallible>> + Send>>;

        fn call(&self, _req: Request<()>) -> Self::Future {
            let this = self.clone();
            Box::pin(async move {
                *this.seen.lock() = current();
                let background = tokio::spawn(async { current().is_some() });
                this.spawned_saw_one
                    .store(background.await.unwrap(), Ordering::SeqCst);
                this.reached.notify_one();
                this.finish.notified().await;
                Ok(())
            })
        }
    }

    /// A request being answered: its future waits for [`Running::finish`].
    struct Running {
        task: tokio::task::JoinHandle<Result<(), Infallible>>,
        finish: Arc<tokio::sync::Notify>,
    }

    impl Running {
        /// Lets the service answer and waits for its future to complete.
        async fn finish(self) {
            self.finish.notify_one();
            self.task.await.unwrap().unwrap();
        }
    }

    fn hint() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("link", HeaderValue::from_static("</a.css>; rel=preload"));
        h.insert("connection", HeaderValue::from_static("x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h
    }

    const HINT: &[u8] = b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n";

    fn request(version: Version) -> Request<()> {
        let mut req = Request::new(());
        *req.version_mut() = version;
        req
    }

    /// Calls `service` for one request as hyper does and runs its future until the service
    /// waits: the handle the future saw as current (if any) and the running request.
    async fn open(
        service: &InterimService<Recorder>,
        version: Version,
    ) -> (Option<Interim>, Running) {
        use hyper::service::Service as _;
        let task = tokio::spawn(service.call(request(version)));
        service.inner.reached.notified().await;
        assert!(
            !service.inner.spawned_saw_one.load(Ordering::SeqCst),
            "a spawned task never inherits the handle"
        );
        let running = Running {
            task,
            finish: Arc::clone(&service.inner.finish),
        };
        (service.inner.seen.lock().take(), running)
    }

    #[tokio::test]
    async fn hint_flushed_while_open_and_final_head_follows() {
        let (mut io, service) = InterimIo::new(Vec::new(), Recorder::default());
        let (handle, fut) = open(&service, Version::HTTP_11).await;
        let handle = handle.expect("an HTTP/1.1 request gets a handle");
        assert!(handle.push(StatusCode::EARLY_HINTS, &hint()));
        io.flush().await.unwrap();
        assert_eq!(io.inner, HINT, "hop-by-hop fields are gone");
        // The future completes: the handle closes before the final head is written.
        fut.finish().await;
        assert!(!handle.push(StatusCode::EARLY_HINTS, &hint()));
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(&io.inner[HINT.len()..], b"HTTP/1.1 200 OK\r\n\r\n");
    }

    #[tokio::test]
    async fn queued_hint_goes_before_the_final_head() {
        let (mut io, service) = InterimIo::new(Vec::new(), Recorder::default());
        let (handle, fut) = open(&service, Version::HTTP_11).await;
        io.flush().await.unwrap(); // hyper's turn after calling the service: armed.
        assert!(
            handle
                .unwrap()
                .push(StatusCode::PROCESSING, &HeaderMap::new())
        );
        fut.finish().await;
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        assert_eq!(
            io.inner,
            b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn hint_never_lands_inside_the_previous_response() {
        let (mut io, service) = InterimIo::new(Vec::new(), Recorder::default());
        // The previous response's head went out and was flushed; its body is still coming
        // when the next (pipelined) request's service is called.
        io.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n")
            .await
            .unwrap();
        io.flush().await.unwrap();
        let (handle, fut) = open(&service, Version::HTTP_11).await;
        assert!(handle.unwrap().push(StatusCode::EARLY_HINTS, &hint()));
        // Not armed yet: the body goes out untouched, the hint waits for the next flush.
        io.write_all(b"body").await.unwrap();
        assert!(io.inner.ends_with(b"\r\n\r\nbody"));
        io.flush().await.unwrap();
        assert!(io.inner.ends_with(HINT));
        fut.finish().await;
    }

    #[tokio::test]
    async fn hint_too_late_for_the_final_head_is_dropped() {
        let (mut io, service) = InterimIo::new(Vec::new(), Recorder::default());
        let (handle, fut) = open(&service, Version::HTTP_11).await;
        // Not armed (no flush since the request opened) when the final head is written.
        assert!(handle.unwrap().push(StatusCode::EARLY_HINTS, &hint()));
        fut.finish().await;
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(io.inner, b"HTTP/1.1 200 OK\r\n\r\n");
    }

    #[tokio::test]
    async fn http_10_and_http_2_requests_get_no_handle() {
        let (_io, service) = InterimIo::new(Vec::<u8>::new(), Recorder::default());
        for version in [Version::HTTP_10, Version::HTTP_2] {
            let (handle, fut) = open(&service, version).await;
            assert!(handle.is_none());
            fut.finish().await;
        }
    }

    #[tokio::test]
    async fn only_informational_statuses_other_than_100_and_101_are_queued() {
        let (_io, service) = InterimIo::new(Vec::<u8>::new(), Recorder::default());
        let (handle, _fut) = open(&service, Version::HTTP_11).await;
        let handle = handle.unwrap();
        for status in [100, 101, 200, 304] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(!handle.push(status, &HeaderMap::new()), "{status}");
        }
        assert!(handle.push(StatusCode::from_u16(199).unwrap(), &HeaderMap::new()));
        assert_eq!(service.shared.state.lock().queue, b"HTTP/1.1 199 \r\n\r\n");
    }

    #[tokio::test]
    async fn a_stale_handle_cannot_push_for_the_next_request() {
        let (_io, service) = InterimIo::new(Vec::<u8>::new(), Recorder::default());
        let (first, fut) = open(&service, Version::HTTP_11).await;
        fut.finish().await;
        let (_second, _fut) = open(&service, Version::HTTP_11).await;
        assert!(!first.unwrap().push(StatusCode::EARLY_HINTS, &hint()));
        assert!(service.shared.state.lock().queue.is_empty());
    }

    #[tokio::test]
    async fn the_queue_is_bounded() {
        let (_io, service) = InterimIo::new(Vec::<u8>::new(), Recorder::default());
        let (handle, _fut) = open(&service, Version::HTTP_11).await;
        let handle = handle.unwrap();
        let mut big = HeaderMap::new();
        let value = HeaderValue::from_str(&"x".repeat(1000)).unwrap();
        big.insert("link", value);
        let pushed = (0..200)
            .take_while(|_| handle.push(StatusCode::EARLY_HINTS, &big))
            .count();
        assert!(pushed > 0 && pushed < 200);
        assert!(service.shared.state.lock().queue.len() <= MAX_QUEUED);
    }
}
