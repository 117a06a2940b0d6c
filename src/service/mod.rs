//! The application core used by both the CLI and the HTTP layer: opening a data directory with
//! its stores, indexes and encoders ([`app`]), running terminology ingests ([`ingest`]) as jobs
//! with persisted status ([`jobs`]), and the commit record that detects a store which lost
//! acknowledged writes ([`integrity`]), background index work and shutdown ([`background`], its
//! shared wake-up state in [`wakeup`]), model cards with the files their trainers wrote
//! ([`models`]), and snapshots of a data directory for read replicas ([`snapshot`]).

pub mod app;
pub mod background;
pub mod ingest;
pub mod integrity;
pub mod jobs;
pub mod models;
pub mod snapshot;
pub mod wakeup;
