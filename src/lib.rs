//! ontovec: an embedding database and semantic search server for medical terminologies.
//!
//! The module tree is the architecture (ARCHITECTURE.md has one section per folder); each
//! layer imports only the layers below it:
//!
//! ```text
//! cli/  api/            entry points: clap commands, axum routes (thin adapters)
//!   fhir/               FHIR R4 terminology resources and operations over the store (api/ serves them)
//!   service/            the application core both drive: open, ingest, jobs, integrity
//!   train/  bench/      trainers and benchmarks (CLI only)
//!   notes/              clinical notes: loaders, windows, segments, ICD coding
//!   search/             lexical (tantivy) + vector (usearch) + fusion, the search engine
//!   encoder/            BERT inference: model thread, batching queue, admission
//!   store/              sled: release tables, notes, migrations (the source of truth)
//!   ontology/           streaming loaders for every terminology format
//!   domain/  util/      shared records, the loader → store contract, small helpers
//! ```
#![deny(missing_docs)]

pub mod api;
pub mod bench;
pub mod cli;
pub mod domain;
pub mod encoder;
pub mod eval;
pub mod fhir;
pub mod notes;
pub mod ontology;
pub mod search;
pub mod service;
pub mod store;
pub mod train;
pub mod util;
