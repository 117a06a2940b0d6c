//! When the process last served a foreground request: the HTTP layer stamps it, background
//! work reads it to leave CPU to requests while they come in (the encoder's bulk thread then
//! runs on all cores but one).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Milliseconds since [`base`] of the last stamp, plus one (0: never).
static LAST: AtomicU64 = AtomicU64::new(0);

/// Record that a foreground request is being served now.
pub fn foreground() {
    let ms = base().elapsed().as_millis() as u64;
    LAST.fetch_max(ms + 1, Ordering::Relaxed);
}

/// Whether a foreground request was served within `window`.
pub fn foreground_within(window: Duration) -> bool {
    let last = LAST.load(Ordering::Relaxed);
    last > 0 && (base().elapsed().as_millis() as u64) < last + window.as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_is_recent_for_its_window() {
        foreground();
        assert!(foreground_within(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(30));
        assert!(!foreground_within(Duration::from_millis(5)));
    }
}
