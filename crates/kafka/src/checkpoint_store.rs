//! Checkpoints live in the output store, beside the Parquet they cover:
//! `OUT/_checkpoints/<topic>/p00003.ckpt`. Every worker of the group reads the
//! same output, so a partition moved to another worker resumes from there; and
//! the Parquet files and the checkpoint that covers them share one durability
//! domain (see docs/operations.md for why not a Kafka changelog topic).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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

#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl CheckpointStore {
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        Ok(CheckpointStore { dir })
    }

    fn path(&self, partition: i32) -> PathBuf {
        self.dir.join(format!("p{partition:05}.ckpt"))
    }

    /// Reads a partition's checkpoint; `None` when it never had one.
    pub fn load(&self, partition: i32) -> io::Result<Option<Checkpoint>> {
        let path = self.path(partition);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(&path)(e)),
        };
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", path.display()));
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

    /// Writes a checkpoint durably and atomically: temp file, fsync, rename, fsync the folder.
    pub fn save(&self, partition: i32, cp: &Checkpoint) -> io::Result<()> {
        let path = self.path(partition);
        let tmp = self.dir.join(format!(".p{partition:05}.ckpt.tmp"));
        let mut body = Vec::with_capacity(9 + cp.engine.len());
        body.extend_from_slice(&cp.next_offset.to_le_bytes());
        body.push(u8::from(cp.closed));
        body.extend_from_slice(&cp.resume_offset.to_le_bytes());
        body.extend_from_slice(&cp.engine);
        let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
        f.write_all(MAGIC).map_err(io_at(&tmp))?;
        f.write_all(&xxhash_rust::xxh3::xxh3_64(&body).to_le_bytes()).map_err(io_at(&tmp))?;
        f.write_all(&body).map_err(io_at(&tmp))?;
        f.sync_all().map_err(io_at(&tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io_at(&path))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io_at(&self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().join("ck/topic")).unwrap();
        assert_eq!(store.load(3).unwrap(), None);
        let cp = Checkpoint { next_offset: 1234, closed: true, resume_offset: 1000, engine: vec![1, 2, 3, 250] };
        store.save(3, &cp).unwrap();
        assert_eq!(store.load(3).unwrap(), Some(cp.clone()));
        let cp2 = Checkpoint { next_offset: 2000, closed: false, resume_offset: 2000, engine: vec![9; 1000] };
        store.save(3, &cp2).unwrap();
        assert_eq!(store.load(3).unwrap(), Some(cp2));
        let path = dir.path().join("ck/topic/p00003.ckpt");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        assert!(store.load(3).unwrap_err().to_string().contains("checksum mismatch"));
        fs::write(&path, b"nonsense").unwrap();
        assert!(store.load(3).is_err());
        assert!(
            fs::read_dir(dir.path().join("ck/topic")).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp"))
        );
    }
}
