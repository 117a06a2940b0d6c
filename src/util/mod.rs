//! Small general helpers every layer may use (nothing here imports another ontovec module):
//! atomic file writes ([`fs`]), progress reporting for long work ([`progress`]), the stable
//! hash of deterministic splits ([`hash`]), vector arithmetic ([`vector`]), timestamps
//! ([`time`]), the shutdown signal ([`signal`]) and when a foreground request was last served ([`activity`]).

pub mod activity;
pub mod fs;
pub mod hash;
pub mod progress;
pub mod signal;
pub mod time;
pub mod vector;
