//! Small general helpers every layer may use (nothing here imports another ontovec module):
//! atomic file writes ([`fs`]) and progress reporting for long work ([`progress`]).

pub mod fs;
pub mod progress;
