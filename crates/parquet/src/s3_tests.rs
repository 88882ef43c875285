//! The sink and the store against a real S3-compatible server: moto on a loopback
//! port, one per test (`deploy/local/setup.sh --test` installs it).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use omnimeter_engine::Rows;

use super::tests::sample;
use super::*;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// The repository: cargo's variable at run time first (see `tests/util::repo`).
fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../..")
}

/// The Python with the test packages: `.venv/` of the repository when setup made it.
fn python() -> PathBuf {
    let venv = repo().join(".venv/bin/python3");
    if venv.exists() { venv } else { PathBuf::from("python3") }
}

/// A moto server with one bucket, stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start(bucket: &str) -> Moto {
        let port =
            TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        let child = Command::new(python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with moto[server] is needed: run deploy/local/setup.sh --test");
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start listening on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let tool = repo().join("tests/tools/s3_bucket.py");
        let out = Command::new(python()).arg(tool).args(["create", &moto.endpoint, bucket]).output().expect("python3");
        assert!(out.status.success(), "creating the bucket: {}", String::from_utf8_lossy(&out.stderr));
        moto
    }

    fn output(&self, bucket: &str, prefix: &str) -> Output {
        Output::S3(S3Output {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".to_owned()),
            access_key_id: Some("testing".to_owned()),
            secret_access_key: Some("testing".to_owned()),
            session_token: None,
            allow_http: true,
        })
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sink_publishes_replaces_and_removes_in_a_bucket() -> TestResult {
    let moto = Moto::start("out");
    let sink = ParquetSink::new(moto.output("out", "team/omni"))?;
    assert_eq!(sink.output().to_string(), "s3://out/team/omni");
    for (partition, offset) in [(0, 0), (0, 100), (0, 200), (1, 100)] {
        sink.write_batch(&sample(), partition, offset)?;
    }
    let report = sink.write_batch(&sample(), 0, 100)?;
    assert_eq!(report.files, [2, 1, 1, 1, 1, 1, 1, 2, 1]);
    let store = sink.store().clone();
    let keys = |table: &str| store.list(table);
    assert_eq!(keys("journeys")?.len(), 8, "4 batches × 2 hours: the rewrite replaced, not added");
    assert_eq!(
        keys("journeys")?[0],
        "journeys/date=2024-02-29/hour=13/p00000-o00000000000000000000.parquet",
        "keys are relative to the prefix"
    );

    // What a reader gets is the Parquet file the sink encoded.
    let bytes = store.get(&report.keys[0])?.ok_or("published object missing")?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?;
    assert_eq!(reader.metadata().file_metadata().num_rows(), 1);

    // A foreign object under a table survives recovery; the prefix is the boundary.
    store.put("journeys/date=2024-02-29/hour=13/notes.txt", b"keep".to_vec())?;
    let outside = Store::open(&moto.output("out", "team"))?;
    assert_eq!(sink.remove_from(0, 100, false, true)?, 22, "batches 100 and 200 of partition 0");
    let left = keys("journeys")?;
    assert_eq!(left.len(), 5, "{left:?}");
    assert!(left.iter().any(|k| k.ends_with("notes.txt")));
    assert!(left.iter().filter(|k| k.contains("p00001-o00000000000000000100")).count() == 2);
    assert!(outside.list("omni/journeys")?.len() == 5, "the same objects seen from the parent prefix");
    assert_eq!(sink.remove_from(0, 100, false, true)?, 0, "idempotent");
    Ok(())
}

#[test]
fn store_round_trips_small_and_multipart_objects_and_misses_cleanly() -> TestResult {
    let moto = Moto::start("ckpt");
    let store = Store::open(&moto.output("ckpt", ""))?;
    assert_eq!(store.get("_checkpoints/t/p00000.ckpt")?, None);
    store.put("_checkpoints/t/p00000.ckpt", b"one".to_vec())?;
    store.put("_checkpoints/t/p00000.ckpt", b"two".to_vec())?;
    assert_eq!(store.get("_checkpoints/t/p00000.ckpt")?.as_deref(), Some(&b"two"[..]), "a PUT replaces");

    // Above one part: a multipart upload, visible whole once completed.
    let big: Vec<u8> = (0..crate::store::PART_SIZE + 12_345).map(|i| (i * 7 % 251) as u8).collect();
    store.put("big/blob", big.clone())?;
    assert!(store.get("big/blob")?.as_deref() == Some(&big[..]), "multipart object round-trips");
    assert_eq!(store.list("")?, ["_checkpoints/t/p00000.ckpt", "big/blob"], "no probe or part left behind");
    store.delete(&["big/blob".to_owned(), "never/was".to_owned()])?;
    assert_eq!(store.list("big")?, Vec::<String>::new());
    Ok(())
}

#[test]
fn a_missing_bucket_fails_at_open_naming_the_url() -> TestResult {
    let moto = Moto::start("exists");
    let err = ParquetSink::new(moto.output("missing", "p")).err().ok_or("expected an error")?;
    let text = err.to_string();
    assert!(text.starts_with("cannot write s3://missing/p/.omnimeter-write-probe-"), "{text}");
    assert!(text.contains("NoSuchBucket: The specified bucket does not exist"), "{text}");
    assert!(!text.contains('\n') && !text.contains("<?xml"), "one line, the XML body condensed: {text}");
    assert!(matches!(err, Error::Store(StoreError::Object { op: "write", .. })), "{err:?}");
    Ok(())
}

/// The worker runs on tokio's blocking pool (`omnimeter run`) or on a plain thread
/// (`omnimeter demo`); the store's own runtime must work, and drop, in both — and
/// a store dropped inside async code must not panic either.
#[test]
fn the_store_works_from_spawn_blocking_and_from_a_plain_thread() -> TestResult {
    let moto = Moto::start("threads");
    let output = moto.output("threads", "x");
    let use_store = |output: Output, key: &'static str| -> std::result::Result<Store, String> {
        let sink = ParquetSink::new(output).map_err(|e| e.to_string())?;
        sink.write_batch(&Rows { journeys: sample().journeys, ..Rows::default() }, 0, 0).map_err(|e| e.to_string())?;
        sink.store().put(key, b"ok".to_vec()).map_err(|e| e.to_string())?;
        Ok(sink.store().clone())
    };
    let plain = {
        let output = output.clone();
        std::thread::spawn(move || use_store(output, "plain").map(drop))
    };
    plain.join().map_err(|_| "plain thread panicked")??;

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let kept = runtime.block_on(async {
        let (o1, o2) = (output.clone(), output.clone());
        tokio::task::spawn_blocking(move || use_store(o1, "blocking").map(drop)).await.map_err(|e| e.to_string())??;
        // A store that ends up dropped in async code.
        let kept = tokio::task::spawn_blocking(move || use_store(o2, "kept")).await.map_err(|e| e.to_string())??;
        let clone = kept.clone();
        tokio::spawn(async move { drop(clone) }).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(kept)
    })?;
    runtime.block_on(async move { drop(kept) });
    drop(runtime);

    let check = Store::open(&output)?;
    for key in ["plain", "blocking", "kept"] {
        assert_eq!(check.get(key)?.as_deref(), Some(&b"ok"[..]), "{key}");
    }
    assert_eq!(check.list("journeys")?.len(), 2);
    Ok(())
}
