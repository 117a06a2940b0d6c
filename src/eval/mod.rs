//! Evaluation: metrics and baselines, as pure code that the trainers (`train/`), the
//! `ontovec eval` command (`cli/eval/`) and tests share. Sits below `train/` and `cli/`; may
//! use `search/` and `encoder/` (to rank and embed), never the serving layers.
//!
//! * [`metrics`] — ROC AUC, HiPrBERT's category-pair AUCs, acc@k and MRR; the conventions
//!   (NaN = not measurable, written `null` / `–`);
//! * [`coding`] — multi-label coding metrics over a notes × codes score matrix: micro/macro F1
//!   at a dev-tuned threshold, micro/macro AUC, P@k, R@k, rare-code variants;
//! * [`embedding`] — pair similarities and normalisation accuracy over any embedding function;
//! * [`terms`] — term-search evaluation against gold files, in-process or over HTTP;
//! * [`ratings`] — Spearman ρ (bootstrap CIs) of a model's cosine against human relatedness
//!   ratings (MayoSRS, MiniMayoSRS, Pedersen-30, Hliaoutakis-36), per set and pooled;
//! * [`paired`] — paired bootstrap of two models' acc@1 on the same mentions (Δ, CI, SE);
//! * [`learn`] — fitting the learned hybrid's weights ([`crate::search::hybrid`]) on dev-set
//!   candidates;
//! * [`bm25`] — the lexical baseline of the coding evaluation (an in-memory Okapi BM25).

pub mod bm25;
pub mod coding;
pub mod embedding;
pub mod learn;
pub mod metrics;
pub mod paired;
pub mod ratings;
pub mod terms;
