//! Checkpoints live in the output store, beside the Parquet they cover:
//! `OUT/_checkpoints/<topic>/p00003-o00000000000000001234.ckpt`, one per cut, in a
//! local directory or the bucket. Every worker of the group reads the same output,
//! so a partition moved to another worker (on another host, too) resumes from
//! there; and the Parquet files and the checkpoint that covers them share one
//! durability domain (see docs/operations.md for why not a Kafka changelog topic).
//!
//! A checkpoint is named by its cut, and the newest name wins: a stale worker that
//! writes an older cut's checkpoint late cannot move a partition backwards.

use std::io;

use omnimeter_parquet::{Store, StoreError};

const MAGIC: &[u8; 8] = b"OMCKPT03";
/// The format before per-cut names: one `p00003.ckpt` overwritten at every flush.
const MAGIC_V2: &[u8; 8] = b"OMCKPT02";

/// Checkpoints of a partition kept besides the newest: a reader that listed just
/// before a save still finds the one it picked.
const KEEP_OLDER: usize = 2;

/// What a partition's checkpoint says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The first offset not yet covered: consumption resumes here, and the next
    /// batch starts here.
    pub next_offset: i64,
    /// Where to seek on resume: an offset at or before `next_offset` known to start a
    /// record batch. Some brokers (tansu 0.6) return nothing from a batch when a fetch
    /// starts in its middle, so resuming at `next_offset` itself could skip messages;
    /// messages below `next_offset` are re-read and skipped.
    pub resume_offset: i64,
    /// The journeys were all closed at `next_offset` (end of an `--until-end` run).
    pub closed: bool,
    /// `file_period` (ms) and `file_rows` of the cut rule that made it; `None` for
    /// checkpoints of the format before cuts by the data.
    pub cut_settings: Option<(i64, u64)>,
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

/// A checkpoint's place in the order of a partition's checkpoints.
type Rank = (i64, bool);

impl CheckpointStore {
    pub fn new(store: Store, topic: &str) -> Self {
        CheckpointStore { store, dir: format!("_checkpoints/{topic}") }
    }

    fn key(&self, partition: i32, rank: Rank) -> String {
        let end = if rank.1 { "-end" } else { "" };
        format!("{}/p{partition:05}-o{:020}{end}.ckpt", self.dir, rank.0)
    }

    /// The partition's checkpoints, oldest first: `(next_offset, closed)` and key.
    fn ranked(&self, partition: i32) -> io::Result<Vec<(Rank, String)>> {
        let prefix = format!("{}/p{partition:05}-o", self.dir);
        let mut found: Vec<(Rank, String)> = self
            .store
            .list(&self.dir)
            .map_err(StoreError::into_io)?
            .into_iter()
            .filter_map(|key| {
                let rest = key.strip_prefix(&prefix)?.strip_suffix(".ckpt")?;
                let (digits, closed) = match rest.strip_suffix("-end") {
                    Some(d) => (d, true),
                    None => (rest, false),
                };
                let ok = digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit());
                let offset = digits.parse().ok().filter(|_| ok)?;
                Some(((offset, closed), key))
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// Reads a partition's newest checkpoint; `None` when it never had one.
    pub fn load(&self, partition: i32) -> io::Result<Option<Checkpoint>> {
        let key = match self.ranked(partition)?.pop() {
            Some((_, key)) => key,
            None => format!("{}/p{partition:05}.ckpt", self.dir), // the format before cuts, if any
        };
        let Some(bytes) = self.store.get(&key).map_err(StoreError::into_io)? else {
            return Ok(None);
        };
        let bad =
            |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", self.store.location(&key)));
        let v2 = bytes.get(..8) == Some(MAGIC_V2.as_slice());
        let header = if v2 { 33 } else { 49 };
        if bytes.len() < header || (!v2 && &bytes[..8] != MAGIC) {
            return Err(bad("not an omnimeter checkpoint"));
        }
        let word = |at: usize| bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
        let (Some(sum), Some(next), Some(resume)) = (word(8), word(16), word(25)) else {
            return Err(bad("truncated"));
        };
        if xxhash_rust::xxh3::xxh3_64(&bytes[16..]) != sum {
            return Err(bad("checksum mismatch"));
        }
        let cut_settings = match (v2, word(33), word(41)) {
            // (0, 0) stands for unknown settings: a cut rule always has a period above zero.
            (false, Some(period), Some(rows)) if period > 0 => Some((period as i64, rows)),
            _ => None,
        };
        Ok(Some(Checkpoint {
            next_offset: next as i64,
            closed: bytes[24] == 1,
            resume_offset: resume as i64,
            cut_settings,
            engine: bytes[header..].to_vec(),
        }))
    }

    /// Writes a checkpoint durably and atomically, whole, under its own name:
    /// locally a temp file that is fsynced and renamed, in a bucket one PUT (or, past
    /// the store's part size, a multipart upload that S3 shows only once complete).
    /// Then deletes the partition's checkpoints older than the [`KEEP_OLDER`] before it.
    pub fn save(&self, partition: i32, cp: &Checkpoint) -> io::Result<()> {
        let (period, rows) = cp.cut_settings.unwrap_or((0, 0));
        let mut body = Vec::with_capacity(25 + cp.engine.len());
        body.extend_from_slice(&cp.next_offset.to_le_bytes());
        body.push(u8::from(cp.closed));
        body.extend_from_slice(&cp.resume_offset.to_le_bytes());
        body.extend_from_slice(&period.to_le_bytes());
        body.extend_from_slice(&rows.to_le_bytes());
        body.extend_from_slice(&cp.engine);
        let mut bytes = Vec::with_capacity(16 + body.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        let rank = (cp.next_offset, cp.closed);
        self.store.put(&self.key(partition, rank), bytes).map_err(StoreError::into_io)?;
        let mut ranked = self.ranked(partition)?;
        // Only checkpoints older than this one go: a newer one (another owner's) stays.
        ranked.retain(|(r, _)| *r < rank);
        let older = ranked.len().saturating_sub(KEEP_OLDER);
        let mut doomed: Vec<String> = ranked.into_iter().take(older).map(|(_, k)| k).collect();
        doomed.push(format!("{}/p{partition:05}.ckpt", self.dir));
        self.store.delete(&doomed).map_err(StoreError::into_io)
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
        let cp = Checkpoint {
            next_offset: 1234,
            closed: true,
            resume_offset: 1000,
            cut_settings: Some((3_600_000, 100_000)),
            engine: vec![1, 2, 3, 250],
        };
        store.save(3, &cp).unwrap();
        assert_eq!(store.load(3).unwrap(), Some(cp.clone()));
        let cp2 = Checkpoint {
            next_offset: 2000,
            closed: false,
            resume_offset: 2000,
            cut_settings: None,
            engine: vec![9; 1000],
        };
        store.save(3, &cp2).unwrap();
        assert_eq!(store.load(3).unwrap(), Some(cp2.clone()));
        // A stale worker saving an older cut late does not move the partition back.
        store.save(3, &cp).unwrap();
        assert_eq!(store.load(3).unwrap(), Some(cp2.clone()));
        // Old checkpoints are pruned, the newest few kept.
        for next in [3000, 4000, 5000] {
            store.save(3, &Checkpoint { next_offset: next, ..cp2.clone() }).unwrap();
        }
        let names = |d: &std::path::Path| -> Vec<String> {
            let mut v: Vec<String> =
                fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
            v.sort();
            v
        };
        let ckdir = dir.path().join("ck/_checkpoints/topic");
        assert_eq!(
            names(&ckdir),
            [
                "p00003-o00000000000000003000.ckpt",
                "p00003-o00000000000000004000.ckpt",
                "p00003-o00000000000000005000.ckpt"
            ]
        );
        // A closing checkpoint ranks after a regular one at the same offset.
        let closed = Checkpoint { next_offset: 5000, closed: true, ..cp2.clone() };
        store.save(3, &closed).unwrap();
        assert_eq!(store.load(3).unwrap(), Some(closed));
        let path = ckdir.join("p00003-o00000000000000005000-end.ckpt");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let err = store.load(3).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch") && err.contains(&path.display().to_string()), "{err}");
        fs::write(&path, b"nonsense").unwrap();
        assert!(store.load(3).is_err());
        assert!(fs::read_dir(&ckdir).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));
    }
}

#[cfg(test)]
mod v2_tests {
    use omnimeter_parquet::Output;

    use super::*;

    #[test]
    fn a_checkpoint_of_the_format_before_cuts_is_read_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let root = Store::open(&Output::Local(dir.path().to_path_buf())).unwrap();
        // Format 2: magic, checksum, next, closed, resume, engine.
        let mut body = Vec::new();
        body.extend_from_slice(&77i64.to_le_bytes());
        body.push(0);
        body.extend_from_slice(&70i64.to_le_bytes());
        body.extend_from_slice(&[5, 6]);
        let mut bytes = MAGIC_V2.to_vec();
        bytes.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        root.put("_checkpoints/t/p00001.ckpt", bytes).unwrap();
        let store = CheckpointStore::new(root, "t");
        let cp = store.load(1).unwrap().unwrap();
        assert_eq!((cp.next_offset, cp.resume_offset, cp.closed, cp.cut_settings), (77, 70, false, None));
        assert_eq!(cp.engine, [5, 6]);
        store.save(1, &Checkpoint { next_offset: 90, cut_settings: Some((1, 1)), ..cp }).unwrap();
        assert!(!dir.path().join("_checkpoints/t/p00001.ckpt").exists());
        assert_eq!(store.load(1).unwrap().unwrap().next_offset, 90);
    }
}
