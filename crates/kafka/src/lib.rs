//! The Kafka edge of omnimeter: a consumer-group worker that runs one engine per
//! assigned partition, writes its rows as offset-named Parquet files, checkpoints
//! the partition's state next to the output, and commits offsets only after both
//! are durable — so a crash or a rebalance at any moment loses and doubles nothing.

mod checkpoint_store;
mod dead_letter;
mod partitions;
mod producer;
mod status;
mod worker;

pub use checkpoint_store::{Checkpoint, CheckpointStore};
pub use producer::{EventProducer, ensure_topic};
pub use status::{PartitionStatus, WorkerStatus};
pub use worker::{Error, Result, WorkerOptions, WorkerReport, run};
