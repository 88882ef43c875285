//! Checkpoints live in the output store, beside the Parquet they cover:
//! `OUT/_checkpoints/<topic>/p00003.ckpt`, in a local directory or the bucket.
//! Every worker of the group reads the same output, so a partition moved to
//! another worker (on another host, too) resumes from there; and the Parquet files
//! and the checkpoint that covers them share one durability domain (see
//! docs/operations.md for why not a Kafka changelog topic).

use std::io;

use omnimeter_parquet::{Store, StoreError};

const MAGIC: &[u8; 8] = b"OMCKPT02";

/// What a partition's checkpoint says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The first offset not yet covered: consumption resumes here.
    pub next_offset: i64,
    /// Where to seek on resume: an offset at or before `next_offset` known to start a
    /// record batch. Some brokers (tansu 0.6) return nothing from a batch when a fetch
    /// starts in its middle, so resuming at `next_offset` itself could skip messages;
    /// messages below `next_offset` are re-read and skipped.
    pub resume_offset: i64,
    /// The journeys were all closed at `next_offset` (end of an `--until-end` run).
    pub closed: bool,
    /// The engine state ([`omnimeter_engine::PartitionEngine::checkpoint`]).
    pub engine: Vec<u8>,
}

/// The checkpoints of one topic's partitions. Errors are `io::Error`s whose
/// message names the file or `s3://` object.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    store: Store,
    /// `_checkpoints/<topic>`: a folder key under the output root.
    dir: String,
}

impl CheckpointStore {
    pub fn new(store: Store, topic: &str) -> Self {
        CheckpointStore { store, dir: format!("_checkpoints/{topic}") }
    }

    fn key(&self, partition: i32) -> String {
        format!("{}/p{partition:05}.ckpt", self.dir)
    }

    /// Reads a partition's checkpoint; `None` when it never had one.
    pub fn load(&self, partition: i32) -> io::Result<Option<Checkpoint>> {
        let key = self.key(partition);
        let Some(bytes) = self.store.get(&key).map_err(StoreError::into_io)? else {
            return Ok(None);
        };
        let bad =
            |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", self.store.location(&key)));
        if bytes.len() < 33 || &bytes[..8] != MAGIC {
            return Err(bad("not an omnimeter checkpoint"));
        }
        let word = |at: usize| bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
        let (Some(sum), Some(next), Some(resume)) = (word(8), word(16), word(25)) else {
            return Err(bad("truncated"));
        };
        let body = &bytes[16..];
        if xxhash_rust::xxh3::xxh3_64(body) != sum {
            return Err(bad("checksum mismatch"));
        }
        Ok(Some(Checkpoint {
            next_offset: next as i64,
            closed: bytes[24] == 1,
            resume_offset: resume as i64,
            engine: bytes[33..].to_vec(),
        }))
    }

    /// Writes a checkpoint durably and atomically, whole: locally a temp file that
    /// is fsynced and renamed over the old one, in a bucket one PUT (or, past the
    /// store's part size, a multipart upload that S3 shows only once complete).
    pub fn save(&self, partition: i32, cp: &Checkpoint) -> io::Result<()> {
        let mut body = Vec::with_capacity(9 + cp.engine.len());
        body.extend_from_slice(&cp.next_offset.to_le_bytes());
        body.push(u8::from(cp.closed));
        body.extend_from_slice(&cp.resume_offset.to_le_bytes());
        body.extend_from_slice(&cp.engine);
        let mut bytes = Vec::with_capacity(16 + body.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        self.store.put(&self.key(partition), bytes).map_err(StoreError::into_io)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use omnimeter_parquet::Output;

    use super::*;

    #[test]
    fn round_trip_and_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let root = Store::open(&Output::Local(dir.path().join("ck"))).unwrap();
        let store = CheckpointStore::new(root, "topic");
        assert_eq!(store.load(3).unwrap(), None);
        let cp = Checkpoint { next_offset: 1234, closed: true, resume_offset: 1000, engine: vec![1, 2, 3, 250] };
        store.save(3, &cp).unwrap();
        assert_eq!(store.load(3).unwrap(), Some(cp.clone()));
        let cp2 = Checkpoint { next_offset: 2000, closed: false, resume_offset: 2000, engine: vec![9; 1000] };
        store.save(3, &cp2).unwrap();
        assert_eq!(store.load(3).unwrap(), Some(cp2));
        let path = dir.path().join("ck/_checkpoints/topic/p00003.ckpt");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let err = store.load(3).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch") && err.contains(&path.display().to_string()), "{err}");
        fs::write(&path, b"nonsense").unwrap();
        assert!(store.load(3).is_err());
        assert!(
            fs::read_dir(dir.path().join("ck/_checkpoints/topic")).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp"))
        );
    }
}
