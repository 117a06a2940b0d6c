//! HiPrBERT training (placeholder while modules land).
pub mod bert;
pub mod checkpoint;
pub mod optim;
pub mod loss;
pub mod ops;
