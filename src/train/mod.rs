//! HiPrBERT training (placeholder while modules land).
pub mod bert;
pub mod ops;
