//! ontovec: an embedding database and semantic search server for medical terminologies.
//!
//! See ARCHITECTURE.md for the data flow. Modules mirror it: [`ontology`] parses releases,
//! [`store`] keeps them durably, [`ingest`] and [`jobs`] run loads, [`app`] is the core the
//! [`api`] (HTTP) and [`cli`] layers drive.
#![deny(missing_docs)]

pub mod api;
pub mod app;
pub mod background;
pub mod bench;
pub mod cli;
pub mod encoder;
pub mod eval_cli;
pub mod ingest;
pub mod integrity;
pub mod jobs;
pub mod notes;
pub mod ontology;
pub mod progress;
pub mod search;
pub mod server;
pub mod store;
pub mod train;
