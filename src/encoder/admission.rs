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
//!
//! **A query does not wait behind batches.** Small requests (at most [`SMALL_REQUEST_TEXTS`]
//! texts: a search, a short normalize) take a **reserve** of their own first
//! ([`Admission::reserved`], an eighth of the allowance, at least 4), which batches never
//! touch, and the shared allowance only when it is spent. Measured on the full public store
//! before the reserve (2026-12-07): two clients sending `POST /v1/embed` batches of 32 back to
//! back held the whole default allowance of 64,
//! and every single vector search in between was refused with 429.

use super::EncoderError;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Default number of texts interactive requests may have in the encoder at once.
pub const DEFAULT_MAX_INFLIGHT_TEXTS: usize = 64;

/// Requests of at most this many texts may use the reserve.
pub const SMALL_REQUEST_TEXTS: usize = 4;

/// Back-off suggested to a refused caller, in milliseconds (`Retry-After: 1`).
const RETRY_AFTER_MS: u64 = 1000;

/// The admission gate shared by every interactive caller of a registry's models.
#[derive(Debug, Clone)]
pub struct Admission {
    permits: Arc<Semaphore>,
    max_texts: usize,
    /// Only for requests of at most [`SMALL_REQUEST_TEXTS`] texts.
    reserve: Arc<Semaphore>,
    reserved: usize,
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
    /// A gate letting at most `max_texts` texts (at least one) in at once, plus a reserve of
    /// `max(4, max_texts / 8)` texts for small requests.
    pub fn new(max_texts: usize) -> Self {
        let max_texts = max_texts.max(1);
        let reserved = (max_texts / 8).max(SMALL_REQUEST_TEXTS);
        Self {
            permits: Arc::new(Semaphore::new(max_texts)),
            max_texts,
            reserve: Arc::new(Semaphore::new(reserved)),
            reserved,
        }
    }

    /// Admit `n` texts, or refuse at once with [`EncoderError::Overloaded`] when other requests
    /// hold too many of the permits. A small request takes the reserve first and the shared
    /// allowance only when the reserve is spent, so queries do not eat into what batches may
    /// use (measured: two clients of 32-text batches against the default 64 got ~10% 429s while
    /// queries took shared permits first). `n` is clamped to the allowance, so a request larger
    /// than it runs alone.
    pub fn try_admit(&self, n: usize) -> Result<Admitted, EncoderError> {
        let want = n.clamp(1, self.max_texts) as u32;
        let shared = || self.permits.clone().try_acquire_many_owned(want);
        let got = if n.max(1) <= SMALL_REQUEST_TEXTS {
            self.reserve
                .clone()
                .try_acquire_many_owned(n.max(1) as u32)
                .or_else(|_| shared())
        } else {
            shared()
        };
        match got {
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

    /// The reserve of small requests, in texts.
    pub fn reserved(&self) -> usize {
        self.reserved
    }

    /// Texts admitted now (the reserve's included).
    pub fn in_flight(&self) -> usize {
        self.max_texts - self.permits.available_permits() + self.reserved
            - self.reserve.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_allowance_and_admits_one_large_request_alone() {
        let gate = Admission::new(4);
        assert_eq!(gate.reserved(), 4);
        // small requests take the reserve first: the whole allowance stays for a batch
        let small: Vec<_> = (0..4).map(|_| gate.try_admit(1).unwrap()).collect();
        let held = gate.try_admit(4).unwrap();
        assert_eq!(gate.in_flight(), 8);
        // both spent: batches and small requests are refused
        assert!(gate.try_admit(SMALL_REQUEST_TEXTS + 1).is_err());
        match gate.try_admit(1) {
            Err(EncoderError::Overloaded { retry_after_ms }) => assert_eq!(retry_after_ms, 1000),
            other => panic!("expected Overloaded, got {other:?}"),
        }
        drop(small);
        // the reserve is back: small requests get in while the batch holds the allowance
        let one = gate.try_admit(1).unwrap();
        assert!(gate.try_admit(2).is_ok());
        drop((one, held));
        assert_eq!(gate.in_flight(), 0);
        // with the reserve spent, a small request uses the shared allowance
        let reserve: Vec<_> = (0..4).map(|_| gate.try_admit(1).unwrap()).collect();
        let shared = gate.try_admit(1).unwrap();
        assert!(
            gate.try_admit(4).is_err(),
            "a permit of the allowance is taken"
        );
        drop((reserve, shared));
        let big = gate.try_admit(1000).unwrap();
        assert!(gate.try_admit(5).is_err());
        let one = gate.try_admit(1).unwrap();
        drop((big, one));
        assert!(gate.try_admit(1).is_ok());
        assert_eq!(Admission::new(0).max_texts(), 1);
        assert_eq!(Admission::new(64).reserved(), 8);
    }
}
