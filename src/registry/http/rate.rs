//! The minimum rate of a blob body: a body averaging less than [`MinRate`] over a window
//! ends with [`RegistryError::TooSlow`], a failed try that the copy redoes. Silence is the
//! idle timeout's business; this catches the body that trickles just fast enough to never
//! be idle.

use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::Instant;

use bytes::Bytes;
use futures_util::Stream;

use super::limits::MinRate;
use crate::registry::RegistryError;

/// `inner`, ended with [`RegistryError::TooSlow`] (naming `context`) as soon as a window
/// of `min.window` brought fewer than `min.bytes_per_second * window` bytes. `None`:
/// `inner` as it is.
pub(super) fn at_least<S>(
    inner: S,
    min: Option<MinRate>,
    context: String,
) -> impl Stream<Item = Result<Bytes, RegistryError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, RegistryError>> + Send + 'static,
{
    RateFloor {
        inner: Box::pin(inner),
        min,
        context,
        window_start: Instant::now(),
        window_bytes: 0,
        done: false,
    }
}

struct RateFloor<S> {
    inner: Pin<Box<S>>,
    min: Option<MinRate>,
    context: String,
    window_start: Instant,
    window_bytes: u64,
    done: bool,
}

impl<S> Stream for RateFloor<S>
where
    S: Stream<Item = Result<Bytes, RegistryError>>,
{
    type Item = Result<Bytes, RegistryError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let item = match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(item) => item,
            Poll::Pending => return Poll::Pending,
        };
        let Some(Ok(chunk)) = item else {
            self.done = item.is_none() || matches!(item, Some(Err(_)));
            return Poll::Ready(item);
        };
        let Some(min) = self.min else {
            return Poll::Ready(Some(Ok(chunk)));
        };
        self.window_bytes += chunk.len() as u64;
        let elapsed = self.window_start.elapsed();
        if elapsed >= min.window {
            let floor = (min.bytes_per_second as f64 * elapsed.as_secs_f64()) as u64;
            if self.window_bytes < floor {
                self.done = true;
                return Poll::Ready(Some(Err(RegistryError::TooSlow {
                    context: self.context.clone(),
                    reason: format!(
                        "the blob arrived at {:.0} bytes/s over {:.1} s, below the minimum of {} bytes/s (RELSYNC_MIN_BLOB_RATE)",
                        self.window_bytes as f64 / elapsed.as_secs_f64(),
                        elapsed.as_secs_f64(),
                        min.bytes_per_second
                    ),
                })));
            }
            self.window_start = Instant::now();
            self.window_bytes = 0;
        }
        Poll::Ready(Some(Ok(chunk)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::time::Duration;

    fn trickle(chunks: usize, every: Duration) -> impl Stream<Item = Result<Bytes, RegistryError>> {
        futures_util::stream::iter(0..chunks).then(move |_| async move {
            tokio::time::sleep(every).await;
            Ok(Bytes::from_static(b"x"))
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_body_ends_with_too_slow() {
        let min = MinRate {
            bytes_per_second: 100,
            window: Duration::from_secs(2),
        };
        let s = at_least(
            trickle(100, Duration::from_millis(500)),
            Some(min),
            "reading blob".into(),
        );
        let items: Vec<_> = s.collect().await;
        assert!(items.len() < 10, "{}", items.len());
        let last = items.last().unwrap().as_ref().unwrap_err();
        assert!(matches!(last, RegistryError::TooSlow { .. }), "{last}");
        assert!(last.is_retryable());
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_at_the_floor_passes_whole() {
        let min = MinRate {
            bytes_per_second: 1,
            window: Duration::from_secs(2),
        };
        let s = at_least(
            trickle(20, Duration::from_millis(500)),
            Some(min),
            "reading blob".into(),
        );
        let items: Vec<_> = s.collect().await;
        assert_eq!(items.len(), 20);
        assert!(items.iter().all(|i| i.is_ok()));
    }
}
