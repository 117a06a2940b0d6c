//! Admission of interactive work to the encoder: the gate that answers 429 at once.
//!
//! Every caller someone is waiting on (a search, a batch of mentions, a note to code, from HTTP
//! or from the CLI) asks the registry's [`Admission`] for as many permits as it has texts to
//! embed, holds them until its vectors are back, and is refused with
//! [`EncoderError::Overloaded`] when the texts already admitted would make it wait too long. This
//! bounds the latency of admitted requests under overload: excess load is shed, not queued.
//! Bulk work (index catch-up, ingest) does not pass through the gate; it waits for queue room
//! in the engine instead.
//!
//! As in text-embeddings-inference, the bound is a counting semaphore in front of the queue; a
//! request larger than the whole allowance is admitted alone, when nothing else holds permits.

use super::EncoderError;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Default number of texts interactive requests may have in the encoder at once.
pub const DEFAULT_MAX_INFLIGHT_TEXTS: usize = 64;

/// Back-off suggested to a refused caller, in milliseconds (`Retry-After: 1`).
const RETRY_AFTER_MS: u64 = 1000;

/// The admission gate shared by every interactive caller of a registry's models.
#[derive(Debug, Clone)]
pub struct Admission {
    permits: Arc<Semaphore>,
    max_texts: usize,
}

/// Texts admitted to the encoder; the permits go back when this is dropped.
#[derive(Debug)]
#[must_use = "the texts are admitted only while this is held"]
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
}

impl Default for Admission {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_INFLIGHT_TEXTS)
    }
}

impl Admission {
    /// A gate letting at most `max_texts` texts (at least one) in at once.
    pub fn new(max_texts: usize) -> Self {
        let max_texts = max_texts.max(1);
        Self {
            permits: Arc::new(Semaphore::new(max_texts)),
            max_texts,
        }
    }

    /// Admit `n` texts, or refuse at once with [`EncoderError::Overloaded`] when other requests
    /// hold too many of the permits. `n` is clamped to the allowance, so a request larger than
    /// it runs alone.
    pub fn try_admit(&self, n: usize) -> Result<Admitted, EncoderError> {
        let want = n.clamp(1, self.max_texts) as u32;
        match self.permits.clone().try_acquire_many_owned(want) {
            Ok(permit) => Ok(Admitted { _permit: permit }),
            Err(_) => {
                metrics::counter!("ontovec_embed_rejected_total").increment(1);
                Err(EncoderError::Overloaded {
                    retry_after_ms: RETRY_AFTER_MS,
                })
            }
        }
    }

    /// The allowance, in texts.
    pub fn max_texts(&self) -> usize {
        self.max_texts
    }

    /// Texts admitted now.
    pub fn in_flight(&self) -> usize {
        self.max_texts - self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_allowance_and_admits_one_large_request_alone() {
        let gate = Admission::new(4);
        let held = gate.try_admit(4).unwrap();
        assert_eq!(gate.in_flight(), 4);
        match gate.try_admit(1) {
            Err(EncoderError::Overloaded { retry_after_ms }) => assert_eq!(retry_after_ms, 1000),
            other => panic!("expected Overloaded, got {other:?}"),
        }
        drop(held);
        assert_eq!(gate.in_flight(), 0);
        let big = gate.try_admit(1000).unwrap();
        assert!(gate.try_admit(1).is_err());
        drop(big);
        assert!(gate.try_admit(1).is_ok());
        assert_eq!(Admission::new(0).max_texts(), 1);
    }
}
