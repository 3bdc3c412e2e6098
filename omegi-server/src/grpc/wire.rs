//! The budget of a gRPC request body as it arrives: its size and its rate.
//!
//! The same rules as an OTLP/HTTP body ([`crate::api::BodyRate`], the body
//! limit): a message larger than the limit on the wire (compressed or not)
//! is refused as soon as its length prefix says so, without waiting for it,
//! and a body that falls behind the minimum rate is cut off with
//! `DEADLINE_EXCEEDED`. tonic sees the refusal as the body's error and
//! answers it as the request's status.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tonic::Status;

use super::status_of;
use crate::api::ingest::Refusal;
use crate::api::BodyRate;
use crate::otlp::DecodeError;

/// The length prefix of a gRPC message: a compression flag and a 32-bit
/// big-endian length.
pub(crate) const FRAME_HEADER: usize = 5;

/// A request body held to a size limit and a minimum rate.
pub(crate) struct WireBudget<B> {
    inner: B,
    /// The largest message, in bytes as sent.
    limit: usize,
    rate: BodyRate,
    start: Instant,
    received: usize,
    /// The first message's length prefix, as far as it has arrived.
    prefix: [u8; FRAME_HEADER],
    deadline: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl<B> WireBudget<B> {
    /// `inner`, refused past `limit` bytes of message or when it arrives
    /// slower than `rate`; the clock starts now.
    pub(crate) fn new(inner: B, limit: usize, rate: BodyRate) -> Self {
        let start = Instant::now();
        let deadline = rate
            .deadline(start, 0)
            .map(|at| Box::pin(tokio::time::sleep_until(at)));
        WireBudget {
            inner,
            limit,
            rate,
            start,
            received: 0,
            prefix: [0; FRAME_HEADER],
            deadline,
            done: false,
        }
    }

    fn too_large(&self) -> Status {
        status_of(&Refusal::decode(&DecodeError::RequestTooLarge {
            limit: self.limit,
        }))
    }

    /// Counts a chunk: an error when the message is over the limit.
    fn count(&mut self, chunk: &[u8]) -> Result<(), Status> {
        for (i, byte) in chunk
            .iter()
            .take(FRAME_HEADER.saturating_sub(self.received))
            .enumerate()
        {
            self.prefix[self.received + i] = *byte;
        }
        self.received = self.received.saturating_add(chunk.len());
        if self.received >= FRAME_HEADER {
            let declared = u32::from_be_bytes([
                self.prefix[1],
                self.prefix[2],
                self.prefix[3],
                self.prefix[4],
            ]);
            if declared as usize > self.limit {
                return Err(self.too_large());
            }
        }
        // A unary call carries one message; anything more is over the limit too.
        if self.received > self.limit.saturating_add(FRAME_HEADER) {
            return Err(self.too_large());
        }
        if let Some(at) = self.rate.deadline(self.start, self.received) {
            if let Some(sleep) = self.deadline.as_mut() {
                sleep.as_mut().reset(at);
            }
        }
        Ok(())
    }

    fn fail(&mut self, status: Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.done = true;
        Poll::Ready(Some(Err(status)))
    }
}

impl<B> Body for WireBudget<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(chunk) = frame.data_ref() {
                    if let Err(status) = this.count(chunk) {
                        return this.fail(status);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                let status = Status::from_error(error.into());
                this.fail(status)
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let Some(sleep) = this.deadline.as_mut() else {
                    return Poll::Pending;
                };
                ready!(sleep.as_mut().poll(cx));
                let elapsed: Duration = this.start.elapsed();
                let refusal = Refusal::too_slow(this.received, elapsed, this.rate);
                this.fail(status_of(&refusal))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
