//! Body types: the boxed body the layer speaks, and a channel body used to stream a response to
//! the client while another task fills the cache.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::sync::mpsc;

use crate::error::BoxError;

/// Chunks buffered between a body producer and the client: the back-pressure bound.
pub(crate) const CHANNEL_CHUNKS: usize = 4;

/// The body type of every request the layer sends to its inner service and every response it
/// returns: any body of [`Bytes`], boxed, with boxed errors.
pub struct ProxyBody(Kind);

/// A whole body in memory (every small hit) is kept without a box: no allocation, no dynamic
/// calls.
enum Kind {
    /// The bytes, until sent; never `Some` of empty bytes.
    Full(Option<Bytes>),
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

impl std::fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyBody").finish_non_exhaustive()
    }
}

impl Default for ProxyBody {
    fn default() -> Self {
        empty()
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.0 {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Boxed(body) => body.size_hint(),
        }
    }
}

/// Boxes any body whose data is [`Bytes`].
pub fn boxed<B>(body: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    ProxyBody(Kind::Boxed(body.map_err(Into::into).boxed_unsync()))
}

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    let bytes = bytes.into();
    ProxyBody(Kind::Full((!bytes.is_empty()).then_some(bytes)))
}

/// An empty body.
pub fn empty() -> ProxyBody {
    ProxyBody(Kind::Full(None))
}

/// A bodiless response the proxy makes itself (a refusal, a gateway error); never stored by
/// anyone: `Content-Length: 0`, `Cache-Control: private, no-store`.
pub(crate) fn canned(status: http::StatusCode) -> http::Response<ProxyBody> {
    use http::header::{self, HeaderValue};
    let mut resp = http::Response::new(empty());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    resp
}

/// One message from a body producer to a [`ChannelBody`].
#[derive(Debug)]
pub(crate) enum Chunk {
    /// More bytes.
    Data(Bytes),
    /// The body ended cleanly.
    End,
    /// The body failed; the client must see an error, never a clean short body.
    Error(BoxError),
}

/// The error a [`ChannelBody`] reports when its producer went away without ending the body.
#[derive(Debug, thiserror::Error)]
#[error("body producer stopped before the end of the body")]
pub(crate) struct ProducerGone;

/// A body fed by a task through a bounded channel (the bound is the back-pressure: the producer
/// waits while the client is slow). It ends cleanly only on [`Chunk::End`].
#[derive(Debug)]
pub(crate) struct ChannelBody {
    rx: mpsc::Receiver<Chunk>,
    len: Option<u64>,
    done: bool,
}

impl ChannelBody {
    /// A channel of `capacity` chunks; `len` is the exact body length when known.
    pub(crate) fn new(capacity: usize, len: Option<u64>) -> (mpsc::Sender<Chunk>, Self) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            tx,
            Self {
                rx,
                len,
                done: false,
            },
        )
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Chunk::Data(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(Some(Chunk::End)) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Chunk::Error(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(Some(Err(Box::new(ProducerGone))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.len
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn channel_body_ends_cleanly_only_on_end() {
        let (tx, body) = ChannelBody::new(2, None);
        tx.send(Chunk::Data(Bytes::from_static(b"ab")))
            .await
            .unwrap();
        tx.send(Chunk::End).await.unwrap();
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(got, "ab");

        let (tx, body) = ChannelBody::new(2, None);
        tx.send(Chunk::Data(Bytes::from_static(b"ab")))
            .await
            .unwrap();
        drop(tx);
        assert!(body.collect().await.is_err());
    }

    #[tokio::test]
    async fn full_and_empty_bodies_frame_like_http_body_util() {
        let whole = full(Bytes::from_static(b"abc"));
        assert!(!whole.is_end_stream());
        assert_eq!(whole.size_hint().exact(), Some(3));
        let frames: Vec<_> =
            futures_util::StreamExt::collect(http_body_util::BodyStream::new(whole)).await;
        assert_eq!(frames.len(), 1);
        for body in [full(Bytes::new()), empty(), ProxyBody::default()] {
            assert!(body.is_end_stream());
            assert_eq!(body.size_hint().exact(), Some(0));
            assert!(body.collect().await.unwrap().to_bytes().is_empty());
        }
        let boxed_empty = boxed(http_body_util::Empty::<Bytes>::new());
        assert!(boxed_empty.is_end_stream());
        let got = boxed(http_body_util::Full::new(Bytes::from_static(b"xy")))
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(got, "xy");
    }
}
