//! [`RecordStream`]: a [`futures_core::Stream`] of records over an owned
//! [`Consumer`], polling it in steps of one second.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;

use crate::consumer::Consumer;
use crate::error::Result;
use crate::record::ConsumerRecord;

type PollFuture = Pin<Box<dyn Future<Output = (Consumer, Result<Vec<ConsumerRecord>>)> + Send>>;

/// A stream of records; never ends by itself. Errors are yielded and the
/// stream keeps going (the consumer decides whether they repeat).
pub struct RecordStream {
    consumer: Option<Consumer>,
    buffered: VecDeque<ConsumerRecord>,
    pending: Option<PollFuture>,
}

impl std::fmt::Debug for RecordStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordStream")
            .field("buffered", &self.buffered.len())
            .finish_non_exhaustive()
    }
}

impl RecordStream {
    pub(crate) fn new(consumer: Consumer) -> Self {
        Self {
            consumer: Some(consumer),
            buffered: VecDeque::new(),
            pending: None,
        }
    }

    /// The consumer back, with the records not yet yielded; `None` while a poll
    /// is in progress (drive the stream until it yields first).
    pub fn into_inner(self) -> Option<(Consumer, Vec<ConsumerRecord>)> {
        let consumer = self.consumer?;
        Some((consumer, self.buffered.into()))
    }
}

impl Stream for RecordStream {
    type Item = Result<ConsumerRecord>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(r) = this.buffered.pop_front() {
                return Poll::Ready(Some(Ok(r)));
            }
            if this.pending.is_none() {
                let Some(mut consumer) = this.consumer.take() else {
                    return Poll::Ready(None);
                };
                this.pending = Some(Box::pin(async move {
                    let r = consumer.poll(Duration::from_secs(1)).await;
                    (consumer, r)
                }));
            }
            let Some(fut) = this.pending.as_mut() else {
                return Poll::Ready(None);
            };
            match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready((consumer, result)) => {
                    this.pending = None;
                    this.consumer = Some(consumer);
                    match result {
                        Ok(records) => this.buffered.extend(records),
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
            }
        }
    }
}

impl Consumer {
    /// Turns the consumer into a [`Stream`] of records.
    pub fn into_stream(self) -> RecordStream {
        RecordStream::new(self)
    }
}
