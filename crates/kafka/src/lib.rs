//! The Kafka edge of omnimeter: a consumer-group worker that runs one engine per
//! assigned partition, cuts its rows into offset-named Parquet files where the data
//! says, and checkpoints the partition's state at each cut next to the output — so a
//! crash, a rebalance or a stale worker at any moment loses and doubles nothing.
//! The resolve stage ([`resolve`]) sits in front of it when events carry identities.

mod checkpoint_store;
mod dead_letter;
mod partitions;
mod producer;
mod resolver;
mod status;
mod worker;

pub use checkpoint_store::{Checkpoint, CheckpointStore};
pub use producer::{EventProducer, ensure_topic};
pub use resolver::{ResolveOptions, ResolveReport, resolve};
pub use status::{LostRange, PartitionStatus, WorkerStatus};
pub use worker::{Error, FinishAt, OnDataLoss, Result, WorkerOptions, WorkerReport, run};
