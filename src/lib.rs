//! ontovec: an embedding database and semantic search server for medical terminologies.
//!
//! See ARCHITECTURE.md for the data flow. Modules mirror it: [`ontology`] parses releases,
//! [`store`] keeps them durably, [`search`] and [`encoder`] serve retrieval, [`api`] is the HTTP
//! layer, [`train`] holds the trainers (never imported by `api`).

pub mod ontology;
pub mod store;
