//! Where the sink and the checkpoints put their bytes: a local directory or an
//! S3-compatible bucket, both addressed by `/`-separated keys under one root. An
//! object becomes visible only once complete, under the name it was asked for, so
//! a retried write replaces rather than duplicates.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::{Path as ObjectPath, PathPart};
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

/// Past this many remembered folders we forget them all; re-checking a folder
/// costs a few fsyncs, an unbounded set would cost memory forever.
const MAX_KNOWN_DIRS: usize = 4096;

/// Objects above this size go up as a multipart upload of parts this big (S3 wants
/// at least 5 MiB per part); smaller ones in one PUT. Either way S3 shows the
/// object only once the last request completes.
pub(crate) const PART_SIZE: usize = 16 * 1024 * 1024;

/// Where output goes.
#[derive(Clone, PartialEq, Eq)]
pub enum Output {
    /// A directory on a local (or mounted) file system.
    Local(PathBuf),
    /// A bucket of Amazon S3 or of an S3-compatible server (MinIO, Ceph, moto, …).
    S3(S3Output),
}

/// An S3 location and how to reach it. Unset settings take object_store's
/// defaults: region `us-east-1`, AWS's endpoint, and the instance's credentials
/// (EC2/EKS metadata) when no keys are given.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Output {
    pub bucket: String,
    /// Key prefix without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
    /// `https://host[:port]`, or `http://…` with `allow_http`.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// For temporary credentials (STS).
    pub session_token: Option<String>,
    pub allow_http: bool,
}

impl fmt::Debug for S3Output {
    /// Never prints the secrets, only whether they are set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |s: &Option<String>| if s.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("S3Output")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &set(&self.secret_access_key))
            .field("session_token", &set(&self.session_token))
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Local(p) => f.debug_tuple("Local").field(p).finish(),
            Output::S3(s) => f.debug_tuple("S3").field(s).finish(),
        }
    }
}

impl fmt::Display for Output {
    /// The path, or `s3://bucket/prefix`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Local(p) => write!(f, "{}", p.display()),
            Output::S3(s) if s.prefix.is_empty() => write!(f, "s3://{}", s.bucket),
            Output::S3(s) => write!(f, "s3://{}/{}", s.bucket, s.prefix),
        }
    }
}

impl From<PathBuf> for Output {
    fn from(p: PathBuf) -> Self {
        Output::Local(p)
    }
}

impl From<&Path> for Output {
    fn from(p: &Path) -> Self {
        Output::Local(p.to_path_buf())
    }
}

impl From<&PathBuf> for Output {
    fn from(p: &PathBuf) -> Self {
        Output::Local(p.clone())
    }
}

/// A storage operation that failed; `location` is the full path or `s3://` URL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `reason` is the error's causes on one line (S3 answers with XML bodies that
    /// repeat themselves down the chain); `error` keeps the original.
    #[error("cannot {op} {location}: {reason}")]
    Object { op: &'static str, location: String, reason: String, error: Box<object_store::Error> },
    #[error("cannot set up the S3 client for {url}: {reason}")]
    Setup { url: String, reason: String, error: Box<object_store::Error> },
    #[error("cannot start the S3 client's runtime")]
    Runtime(#[source] io::Error),
}

impl StoreError {
    /// The same error as an `io::Error` of a fitting kind, for callers that speak `io`.
    pub fn into_io(self) -> io::Error {
        let kind = match &self {
            StoreError::Io { source, .. } | StoreError::Runtime(source) => source.kind(),
            StoreError::Object { error, .. } if matches!(**error, object_store::Error::NotFound { .. }) => {
                io::ErrorKind::NotFound
            }
            StoreError::Object { .. } | StoreError::Setup { .. } => io::ErrorKind::Other,
        };
        io::Error::new(kind, self)
    }
}

type StoreResult<T> = std::result::Result<T, StoreError>;

/// A handle on the output root; clones share one client (and, for S3, one runtime).
#[derive(Clone)]
pub struct Store {
    output: Output,
    backend: Arc<Backend>,
}

enum Backend {
    Local(Local),
    Object(Bucket),
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("output", &self.output).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the output root: creates a local directory, or sets up the S3 client
    /// (no request yet: [`Store::probe`] checks that writing works).
    pub fn open(output: &Output) -> StoreResult<Store> {
        let backend = match output {
            Output::Local(root) => {
                fs::create_dir_all(root).map_err(|source| io_err("create", root, source))?;
                Backend::Local(Local { root: root.clone(), known_dirs: Mutex::new(HashSet::new()) })
            }
            Output::S3(s3) => Backend::Object(Bucket::open(s3, output.to_string())?),
        };
        Ok(Store { output: output.clone(), backend: Arc::new(backend) })
    }

    pub fn output(&self) -> &Output {
        &self.output
    }

    /// The full path or URL of `key`, for messages.
    pub fn location(&self, key: &str) -> String {
        match &*self.backend {
            Backend::Local(l) => l.path(key).display().to_string(),
            Backend::Object(b) => format!("{}/{key}", b.url),
        }
    }

    /// Writes and deletes a small object, so a bad root, bucket or credentials
    /// fail at start-up rather than at the first flush.
    pub fn probe(&self) -> StoreResult<()> {
        // Unique per process and sink: several workers (processes, hosts, or threads
        // of one demo) may share one root, and containers all run as pid 1.
        static PROBES: AtomicU64 = AtomicU64::new(0);
        let n = PROBES.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let key = format!(".omnimeter-write-probe-{}-{nanos}-{n}", std::process::id());
        match &*self.backend {
            Backend::Local(l) => {
                let path = l.path(&key);
                File::create(&path)
                    .and_then(|_| fs::remove_file(&path))
                    .map_err(|source| io_err("write", &path, source))
            }
            Backend::Object(b) => {
                b.put(&key, Vec::new())?;
                b.delete(&key)
            }
        }
    }

    /// Publishes `bytes` under `key`, replacing what was there: locally a temp file
    /// that is fsynced and renamed over the name, then the folder fsynced; in a
    /// bucket one PUT (or a multipart upload completed at the end).
    pub fn put(&self, key: &str, bytes: Vec<u8>) -> StoreResult<()> {
        match &*self.backend {
            Backend::Local(l) => l.put(key, &bytes),
            Backend::Object(b) => b.put(key, bytes),
        }
    }

    /// A batch of objects published together (one cut's files): see [`PutBatch`].
    pub fn batch(&self) -> PutBatch<'_> {
        PutBatch { store: self, staged: Vec::new(), published: false }
    }

    /// The object at `key`; `None` when there is none.
    pub fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        match &*self.backend {
            Backend::Local(l) => {
                let path = l.path(key);
                match fs::read(&path) {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io_err("read", &path, e)),
                }
            }
            Backend::Object(b) => b.get(key),
        }
    }

    /// Every key under the folder `dir` (recursively), hidden temp files included.
    pub fn list(&self, dir: &str) -> StoreResult<Vec<String>> {
        match &*self.backend {
            Backend::Local(l) => l.list(dir),
            Backend::Object(b) => b.list(dir),
        }
    }

    /// Deletes `keys`; keys already gone are not an error.
    pub fn delete(&self, keys: &[String]) -> StoreResult<()> {
        match &*self.backend {
            Backend::Local(l) => l.delete(keys),
            Backend::Object(b) => keys.iter().try_for_each(|k| b.delete(k)),
        }
    }
}

fn io_err(op: &'static str, path: &Path, source: io::Error) -> StoreError {
    StoreError::Io { op, path: path.to_path_buf(), source }
}

/// Objects put as one batch. Locally each is written under a hidden temp name,
/// then all are made durable by one file-system sync, renamed into place, and the
/// renames made durable by a second sync: two syncs a batch instead of two fsyncs a
/// file (a cut writes a file per table and hour, and per-file fsyncs were a quarter
/// of file mode's time). A crash before [`PutBatch::publish`] returns leaves every
/// published name whole or absent, as with [`Store::put`]. In a bucket each object
/// is one PUT, visible at once. Temps of a batch dropped unpublished are removed.
pub struct PutBatch<'s> {
    store: &'s Store,
    /// (temp, final) paths of local objects not yet renamed.
    staged: Vec<(PathBuf, PathBuf)>,
    published: bool,
}

impl PutBatch<'_> {
    /// Writes `bytes` for `key`; invisible under `key` (locally) until `publish`.
    pub fn put(&mut self, key: &str, bytes: Vec<u8>) -> StoreResult<()> {
        match &*self.store.backend {
            Backend::Local(l) => {
                let (tmp, path) = l.staging(key)?;
                // New folders become durable with the batch's second sync.
                let dir = parent(&path);
                fs::create_dir_all(dir).map_err(|source| io_err("create", dir, source))?;
                let written = File::create(&tmp).and_then(|mut f| f.write_all(&bytes));
                self.staged.push((tmp.clone(), path));
                written.map_err(|source| io_err("write", &tmp, source))
            }
            Backend::Object(b) => b.put(key, bytes),
        }
    }

    /// Makes every object of the batch durable and visible under its name.
    pub fn publish(mut self) -> StoreResult<()> {
        let Backend::Local(l) = &*self.store.backend else {
            self.published = true;
            return Ok(());
        };
        if self.staged.is_empty() {
            self.published = true;
            return Ok(());
        }
        // On an error the temps not yet renamed are removed on drop.
        l.sync_all(&self.staged)?;
        for (tmp, path) in &self.staged {
            fs::rename(tmp, path).map_err(|source| io_err("rename into", path, source))?;
        }
        self.published = true;
        l.sync_renames(&self.staged)?;
        let mut known = l.known_dirs.lock().unwrap_or_else(|e| e.into_inner());
        for (_, path) in &self.staged {
            remember(&mut known, parent(path));
        }
        Ok(())
    }
}

impl Drop for PutBatch<'_> {
    fn drop(&mut self) {
        if !self.published {
            // Best effort: a leftover temp is invisible to readers and `remove_from` sweeps it.
            for (tmp, _) in &self.staged {
                let _ = fs::remove_file(tmp);
            }
        }
    }
}

/// A local directory, written with temp file + fsync + rename + folder fsync.
struct Local {
    root: PathBuf,
    /// Folders created (and made durable) through this store, so that is done once.
    known_dirs: Mutex<HashSet<PathBuf>>,
}

/// Temp name beside a final name: the leading dot hides it from `**/*.parquet`
/// globs and from Hive-style readers, which skip dot and underscore files.
pub(crate) fn temp_name(final_name: &str) -> String {
    format!(".{final_name}.tmp")
}

impl Local {
    fn path(&self, key: &str) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(key.split('/').filter(|s| !s.is_empty()));
        p
    }

    /// `key`'s final path and the hidden temp beside it that is written first.
    fn staging(&self, key: &str) -> StoreResult<(PathBuf, PathBuf)> {
        let path = self.path(key);
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return Err(io_err("write", &path, io::Error::new(io::ErrorKind::InvalidInput, "not a file name")));
        };
        Ok((path.with_file_name(temp_name(name)), path))
    }

    fn put(&self, key: &str, bytes: &[u8]) -> StoreResult<()> {
        let (tmp, path) = self.staging(key)?;
        let dir = parent(&path);
        self.ensure_dir(dir)?;
        let written = write_synced(&tmp, bytes)
            .map_err(|source| io_err("write", &tmp, source))
            .and_then(|()| fs::rename(&tmp, &path).map_err(|source| io_err("rename into", &path, source)));
        if written.is_err() {
            // Best effort: a leftover temp is invisible to readers and the sink's `remove_from` sweeps it.
            let _ = fs::remove_file(&tmp);
        }
        written?;
        // The rename is only durable once the directory entry is.
        sync_dir(dir)
    }

    /// Creates a folder and fsyncs its parents up to the root, so that after a
    /// crash a published file is not lost with a folder entry that never reached disk.
    /// A folder already made durable by this store ends the walk: its own ancestors
    /// were synced then (a new hour's folder costs one fsync, not one per level).
    fn ensure_dir(&self, dir: &Path) -> StoreResult<()> {
        let mut known = self.known_dirs.lock().unwrap_or_else(|e| e.into_inner());
        if known.contains(dir) {
            return Ok(());
        }
        fs::create_dir_all(dir).map_err(|source| io_err("create", dir, source))?;
        for (folder, parent) in dir.ancestors().zip(dir.ancestors().skip(1)) {
            if !parent.starts_with(&self.root) || (folder != dir && known.contains(folder)) {
                break;
            }
            sync_dir(parent)?;
            remember(&mut known, folder);
        }
        Ok(())
    }

    /// Makes the staged temps' bytes durable (before they are renamed into place).
    fn sync_all(&self, staged: &[(PathBuf, PathBuf)]) -> StoreResult<()> {
        if self.syncfs()? {
            return Ok(());
        }
        for (tmp, path) in staged {
            File::open(tmp).and_then(|f| f.sync_all()).map_err(|source| io_err("sync", tmp, source))?;
            self.ensure_dir(parent(path))?;
        }
        Ok(())
    }

    /// Makes the renames, and the folders they needed, durable.
    fn sync_renames(&self, staged: &[(PathBuf, PathBuf)]) -> StoreResult<()> {
        if self.syncfs()? {
            return Ok(());
        }
        let mut dirs: Vec<&Path> = staged.iter().map(|(_, p)| parent(p)).collect();
        dirs.sort();
        dirs.dedup();
        dirs.into_iter().try_for_each(sync_dir)
    }

    /// One `syncfs(2)` of the file system holding the root: it also waits for other
    /// programs' unwritten data there, the price of not paying one flush per file.
    /// `false` where there is no such call (other systems, or a file system that
    /// refuses it): the caller syncs file by file instead.
    #[cfg(target_os = "linux")]
    fn syncfs(&self) -> StoreResult<bool> {
        let synced = File::open(&self.root).and_then(|root| rustix::fs::syncfs(&root).map_err(io::Error::from));
        match synced {
            Ok(()) => Ok(true),
            Err(e) if syncfs_unsupported(&e) => Ok(false),
            Err(source) => Err(io_err("sync the file system of", &self.root, source)),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn syncfs(&self) -> StoreResult<bool> {
        Ok(false)
    }

    fn list(&self, dir: &str) -> StoreResult<Vec<String>> {
        fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) -> StoreResult<()> {
            let entries = match fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_err("list", dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io_err("list", dir, e))?;
                // Names that are not UTF-8 were not written by omnimeter: skip them.
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
                let key = if rel.is_empty() { name } else { format!("{rel}/{name}") };
                if entry.file_type().map_err(|e| io_err("list", dir, e))?.is_dir() {
                    walk(&entry.path(), &key, out)?;
                } else {
                    out.push(key);
                }
            }
            Ok(())
        }
        let mut out = Vec::new();
        walk(&self.path(dir), dir.trim_matches('/'), &mut out)?;
        out.sort();
        Ok(out)
    }

    fn delete(&self, keys: &[String]) -> StoreResult<()> {
        let mut dirs = Vec::new();
        for key in keys {
            let path = self.path(key);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("delete", &path, e)),
            }
            if let Some(dir) = path.parent()
                && !dirs.iter().any(|d: &PathBuf| d == dir)
            {
                dirs.push(dir.to_path_buf());
            }
        }
        // A deletion is durable once the folder is: otherwise a crash could bring back
        // an uncommitted batch's file after its replacement was written.
        dirs.iter().try_for_each(|d| sync_dir(d))
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    // `create` truncates, so a temp left by an earlier crash is simply reused.
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A file system without `syncfs` (some FUSE and network ones answer ENOSYS, EINVAL
/// or EOPNOTSUPP): not an I/O failure, a reason to sync file by file.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn syncfs_unsupported(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::Unsupported | io::ErrorKind::InvalidInput)
}

/// The folder of a path made by [`Local::staging`] (which always has a file name).
fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(path)
}

/// Notes a folder as durable; past [`MAX_KNOWN_DIRS`] the set starts over.
fn remember(known: &mut HashSet<PathBuf>, dir: &Path) {
    if known.len() >= MAX_KNOWN_DIRS {
        known.clear();
    }
    known.insert(dir.to_path_buf());
}

fn sync_dir(dir: &Path) -> StoreResult<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|source| io_err("sync", dir, source))
}

/// An object_store error and its causes on one line: each cause once, and an S3
/// error body (`<Error><Code>NoSuchBucket</Code><Message>…`) as `NoSuchBucket: …`.
fn one_line(e: &object_store::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cause {
        let text = c.to_string();
        let tag = |t: &str| text.split(&format!("<{t}>")).nth(1)?.split(&format!("</{t}>")).next();
        let text = match (text.find("<?xml").or_else(|| text.find("<Error>")), tag("Code"), tag("Message")) {
            (Some(at), Some(code), Some(message)) => format!("{} {code}: {message}", text[..at].trim_end()),
            _ => text.clone(),
        };
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        // object_store repeats a cause inside its parent's message.
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ")
}

/// An S3 bucket and prefix, driven from blocking code through a runtime of its own.
struct Bucket {
    s3: AmazonS3,
    prefix: ObjectPath,
    /// `s3://bucket/prefix`, for messages.
    url: String,
    /// object_store is async, its callers (the worker's poll thread, file mode)
    /// are not: each call is `block_on` on this single-threaded runtime, which
    /// works from a plain thread and from tokio's `spawn_blocking` alike.
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Bucket {
    /// Dropping a runtime blocks, which panics inside async code; a store dropped
    /// there (say by a task that owned a worker's options) must not bring it down.
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Transient S3 errors (5xx, throttling, timeouts, resets) are retried with
/// exponential backoff; bounded well below Kafka's poll interval, because the
/// worker retries a failed flush itself and must keep polling meanwhile.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 5,
        retry_timeout: Duration::from_secs(20),
    }
}

impl Bucket {
    fn open(s3: &S3Output, url: String) -> StoreResult<Bucket> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("omnimeter-s3")
            .build()
            .map_err(StoreError::Runtime)?;
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&s3.bucket)
            .with_allow_http(s3.allow_http)
            .with_retry(retry_config())
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(s3.allow_http)
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(60)),
            );
        if let Some(v) = &s3.endpoint {
            builder = builder.with_endpoint(v);
        }
        if let Some(v) = &s3.region {
            builder = builder.with_region(v);
        }
        if let Some(v) = &s3.access_key_id {
            builder = builder.with_access_key_id(v);
        }
        if let Some(v) = &s3.secret_access_key {
            builder = builder.with_secret_access_key(v);
        }
        if let Some(v) = &s3.session_token {
            builder = builder.with_token(v);
        }
        let s3_client = {
            // The HTTP client may look for the current runtime while it is built.
            let _inside = runtime.enter();
            builder.build().map_err(|error| StoreError::Setup {
                url: url.clone(),
                reason: one_line(&error),
                error: Box::new(error),
            })?
        };
        let prefix = s3.prefix.split('/').filter(|s| !s.is_empty()).map(PathPart::from).collect();
        Ok(Bucket { s3: s3_client, prefix, url, runtime: Some(runtime) })
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        match &self.runtime {
            Some(rt) => rt.block_on(f),
            None => unreachable!("the runtime is only taken by drop"),
        }
    }

    fn path(&self, key: &str) -> ObjectPath {
        self.prefix.parts().chain(key.split('/').filter(|s| !s.is_empty()).map(PathPart::from)).collect()
    }

    fn err(&self, op: &'static str, key: &str, error: object_store::Error) -> StoreError {
        StoreError::Object {
            op,
            location: format!("{}/{key}", self.url),
            reason: one_line(&error),
            error: Box::new(error),
        }
    }

    fn put(&self, key: &str, bytes: Vec<u8>) -> StoreResult<()> {
        let path = self.path(key);
        if bytes.len() <= PART_SIZE {
            return self
                .block_on(self.s3.put(&path, PutPayload::from(bytes)))
                .map(drop)
                .map_err(|e| self.err("write", key, e));
        }
        self.block_on(async {
            let mut upload = self.s3.put_multipart(&path).await?;
            let mut parts = Ok(());
            for chunk in bytes.chunks(PART_SIZE) {
                parts = upload.put_part(PutPayload::from(chunk.to_vec())).await;
                if parts.is_err() {
                    break;
                }
            }
            match parts {
                Ok(()) => upload.complete().await.map(drop),
                Err(e) => {
                    // Best effort: an upload left open is invisible, and a bucket
                    // lifecycle rule (AbortIncompleteMultipartUpload) reclaims it.
                    let _ = upload.abort().await;
                    Err(e)
                }
            }
        })
        .map_err(|e| self.err("write", key, e))
    }

    fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let path = self.path(key);
        let got = self.block_on(async {
            match self.s3.get(&path).await {
                Ok(r) => r.bytes().await.map(|b| Some(b.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        got.map_err(|e| self.err("read", key, e))
    }

    fn list(&self, dir: &str) -> StoreResult<Vec<String>> {
        let path = self.path(dir);
        let found = self.block_on(self.s3.list(Some(&path)).try_collect::<Vec<_>>());
        let found = found.map_err(|e| self.err("list", dir, e))?;
        let mut keys: Vec<String> = found
            .iter()
            .filter_map(|meta| meta.location.prefix_match(&self.prefix))
            .map(|rest| rest.map(|part| part.as_ref().to_owned()).collect::<Vec<_>>().join("/"))
            .collect();
        keys.sort();
        Ok(keys)
    }

    fn delete(&self, key: &str) -> StoreResult<()> {
        let path = self.path(key);
        match self.block_on(self.s3.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("delete", key, e)),
        }
    }
}
