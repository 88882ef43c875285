//! The pure heart of omnimeter: raw event bytes and their source position go in,
//! finalized table rows come out. No I/O, no clock, no async: adapters (file mode,
//! the Kafka worker) own those, which keeps every rule here unit-testable and fast.

mod counts;
mod cuts;
mod deadlines;
pub mod decode;
mod engine;
pub mod event;
pub mod identity;
mod journey;
mod names;
mod reorder;
pub mod resolve;
pub mod rows;
mod stats;
mod tally;
pub mod time;
mod windows;

pub use cuts::{CutReason, CutRule, MAX_PENDING_REJECTED_BYTES};
pub use decode::{MAX_PAYLOAD_BYTES, decode, decode_str};
pub use engine::{CheckpointError, ConfigError, EngineConfig, PartitionEngine, tie_hash};
pub use event::{Event, EventType, Identities};
pub use identity::{IdentityBook, IdentityCounts};
pub use resolve::{Forwarded, PartitionResolver};
pub use rows::*;
pub use stats::Stats;
pub use tally::Tally;
pub use time::DurationMs;
