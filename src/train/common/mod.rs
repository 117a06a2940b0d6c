//! Training machinery shared by the HiPrBERT and NoteContrast trainers.

pub mod bert;
pub mod card;
pub mod checkpoint;
pub mod config;
pub mod embed;
pub mod fused;
pub mod ops;
pub mod optim;
pub mod parallel;
#[doc(hidden)]
pub mod testing;
