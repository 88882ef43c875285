//! The output location of `run`: `--output` or `output.url` (a directory,
//! `file:///path` or `s3://bucket/prefix`) plus the `[output.s3]` settings, turned
//! into what the Parquet sink opens.

use omnimeter_config::{Config, ConfigError, OutputConfig, OutputLocation};
use omnimeter_parquet::{Output, S3Output};

/// The sink's output for a validated `[output]` section.
pub(crate) fn output_of(cfg: &OutputConfig) -> Result<Output, ConfigError> {
    let nonempty = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
    Ok(match cfg.location()? {
        OutputLocation::Local(path) => Output::Local(path),
        OutputLocation::S3 { bucket, prefix } => Output::S3(S3Output {
            bucket,
            prefix,
            endpoint: nonempty(&cfg.s3.endpoint),
            region: nonempty(&cfg.s3.region),
            access_key_id: nonempty(&cfg.s3.access_key_id),
            secret_access_key: cfg.s3.secret_access_key.get().map(str::to_owned),
            session_token: cfg.s3.session_token.get().map(str::to_owned),
            allow_http: cfg.s3.allow_http,
        }),
    })
}

/// File mode's output: `url` from `--output`, with the bucket settings taken from
/// `OMNIMETER_OUTPUT_*` and `AWS_*` variables like a worker's (no config file).
pub(crate) fn from_env(url: &str) -> Result<Output, ConfigError> {
    let output_vars = std::env::vars().filter(|(k, _)| k.starts_with("OMNIMETER_OUTPUT_") || k.starts_with("AWS_"));
    let mut cfg = Config::load(None, output_vars)?;
    cfg.output.url = url.to_owned();
    cfg.validate()?;
    output_of(&cfg.output)
}
