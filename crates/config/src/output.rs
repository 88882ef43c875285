//! The `[output]` section: where the Parquet tables and checkpoints go (a directory,
//! `file:///path` or `s3://bucket/prefix`) and how to reach a bucket, with the
//! standard `AWS_*` variables as the last fallback of the `[output.s3]` keys.

use std::fmt;
use std::path::PathBuf;

use omnimeter_engine::DurationMs;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::{duration, value};

/// Rows a partition gathers at most before it cuts a batch (`output.file_rows`):
/// about 25 MiB of rows in memory per partition, and files of a few MiB.
pub const DEFAULT_FILE_ROWS: usize = 100_000;

/// Where and how often results are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "an [output] table")]
pub struct OutputConfig {
    /// Root of the Parquet tables and checkpoints: a directory path,
    /// `file:///absolute/path` or `s3://bucket/prefix`. Older files call it `dir`.
    pub url: String,
    /// Event time per published batch: a partition cuts its output when its
    /// watermark enters a new multiple of this (SPEC §4).
    #[serde(with = "duration")]
    pub file_period: DurationMs,
    /// Rows waiting in a partition that force a cut before the period ends: bounds memory.
    pub file_rows: usize,
    /// How to reach the bucket of an `s3://` URL.
    pub s3: S3Config,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            url: "./omnimeter-out".to_owned(),
            file_period: DurationMs(3_600_000),
            file_rows: DEFAULT_FILE_ROWS,
            s3: S3Config::default(),
        }
    }
}

/// The `[output.s3]` section; `""` leaves a setting to its default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "an [output.s3] table")]
pub struct S3Config {
    /// `https://host[:port]` of an S3-compatible server; `""` for AWS.
    pub endpoint: String,
    /// `""` for `us-east-1`.
    pub region: String,
    /// With `secret_access_key`; both `""` to use the instance's role (EC2/EKS metadata).
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// For temporary credentials.
    pub session_token: Secret,
    /// Allow a plain `http://` endpoint (test servers, a MinIO on a private network).
    pub allow_http: bool,
}

/// A value kept out of logs: `Debug` says only whether it is set.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The value, `None` when empty.
    pub fn get(&self) -> Option<&str> {
        Some(self.0.as_str()).filter(|s| !s.is_empty())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "<secret>" })
    }
}

/// Where `output.url` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputLocation {
    Local(PathBuf),
    /// `prefix` has no leading or trailing `/`; empty for the bucket's root.
    S3 {
        bucket: String,
        prefix: String,
    },
}

const EXPECTED_URL: &str = "a directory path like \"./omnimeter-out\", file:///absolute/path or s3://bucket/prefix";
const EXPECTED_FILE: &str = "file:///absolute/path (three slashes, then an absolute path), or a plain directory path";
const EXPECTED_S3: &str = "s3://bucket/prefix, with a bucket name of 3 to 63 lower-case letters, digits, '.' and '-' \
                           and a prefix of '/'-separated names (no '.', '..', '?', '#' or empty names)";

impl OutputLocation {
    /// Parses an output URL or path; the error is what was expected instead.
    pub fn parse(s: &str) -> Result<OutputLocation, &'static str> {
        if s.trim().is_empty() {
            return Err(EXPECTED_URL);
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            // `s3:/bucket` or `file:/x` is a mistyped URL rather than a folder named `s3:`.
            let lower = s.to_ascii_lowercase();
            if lower.starts_with("s3:") || lower.starts_with("file:") {
                return Err(EXPECTED_URL);
            }
            return Ok(OutputLocation::Local(PathBuf::from(s)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                if !path.starts_with('/') {
                    return Err(EXPECTED_FILE);
                }
                percent_decode(path).map(|p| OutputLocation::Local(PathBuf::from(p))).ok_or(EXPECTED_FILE)
            }
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                let prefix = prefix.trim_matches('/');
                let name_ok = |n: &str| {
                    !n.is_empty()
                        && n != "."
                        && n != ".."
                        && !n.chars().any(|c| c.is_control() || matches!(c, '?' | '#' | '\\'))
                };
                if !bucket_name_ok(bucket) || !(prefix.is_empty() || prefix.split('/').all(name_ok)) {
                    return Err(EXPECTED_S3);
                }
                Ok(OutputLocation::S3 { bucket: bucket.to_owned(), prefix: prefix.to_owned() })
            }
            _ => Err(EXPECTED_URL),
        }
    }
}

/// S3's rule for bucket names (the common subset every region accepts).
fn bucket_name_ok(b: &str) -> bool {
    let edge_ok = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&b.len())
        && b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && edge_ok(b.bytes().next())
        && edge_ok(b.bytes().last())
        && !b.contains("..")
}

/// `%20` → ` `; `None` on a malformed escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl OutputConfig {
    /// Where `url` points; refused with a one-line error naming the key.
    pub fn location(&self) -> Result<OutputLocation, ConfigError> {
        OutputLocation::parse(&self.url).map_err(|expected| value("output.url", &format!("{:?}", self.url), expected))
    }

    /// Checks the URL, and for a bucket the `[output.s3]` keys.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=100_000_000).contains(&self.file_rows) {
            return Err(value(
                "output.file_rows",
                &self.file_rows.to_string(),
                "rows per partition before a cut, from 1 to 100000000, like 100000",
            ));
        }
        if let OutputLocation::S3 { .. } = self.location()? {
            self.s3.validate()?;
        }
        Ok(())
    }
}

impl S3Config {
    fn validate(&self) -> Result<(), ConfigError> {
        let e = &self.endpoint;
        if !e.is_empty() {
            let host = e.strip_prefix("https://").or_else(|| e.strip_prefix("http://"));
            if host.is_none_or(|h| h.is_empty() || h.starts_with('/') || h.contains(char::is_whitespace)) {
                return Err(value(
                    "output.s3.endpoint",
                    &format!("{e:?}"),
                    "a URL like \"https://s3.eu-west-1.amazonaws.com\" or \"http://127.0.0.1:9000\", or \"\" for AWS",
                ));
            }
            if e.starts_with("http://") && !self.allow_http {
                return Err(value(
                    "output.s3.endpoint",
                    &format!("{e:?}"),
                    "an https:// URL, or output.s3.allow_http = true (AWS_ALLOW_HTTP=true) for plain HTTP",
                ));
            }
        }
        if self.region.contains(char::is_whitespace) {
            return Err(value("output.s3.region", &format!("{:?}", self.region), "a region name like \"eu-west-1\""));
        }
        // Values of secrets are never echoed; only that one is missing.
        match (self.access_key_id.is_empty(), self.secret_access_key.get().is_none()) {
            (false, true) => Err(value(
                "output.s3.secret_access_key",
                "\"\"",
                "a secret key with output.s3.access_key_id (AWS_SECRET_ACCESS_KEY), or neither for the instance's role",
            )),
            (true, false) => Err(value(
                "output.s3.access_key_id",
                "\"\"",
                "a key id with output.s3.secret_access_key (AWS_ACCESS_KEY_ID), or neither for the instance's role",
            )),
            (true, true) if self.session_token.get().is_some() => {
                Err(value("output.s3.access_key_id", "\"\"", "a key id and secret key with output.s3.session_token"))
            }
            _ => Ok(()),
        }
    }
}
