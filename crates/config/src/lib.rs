//! omnimeter's settings: one serde struct tree with defaults, read from a TOML file
//! and `OMNIMETER_<SECTION>_<KEY>` environment overrides, then validated. Pure: the
//! caller passes the file path and the environment; nothing global is read.

pub mod duration;
pub mod env;
mod error;
mod output;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use omnimeter_engine::{DurationMs, EngineConfig};
use serde::{Deserialize, Serialize};
use toml::{Table, Value};

pub use error::ConfigError;
pub use output::{DEFAULT_FILE_ROWS, OutputConfig, OutputLocation, S3Config, Secret};

/// Every setting of a worker. Each section may be left out of the file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a table of sections")]
pub struct Config {
    pub kafka: KafkaConfig,
    pub output: OutputConfig,
    pub engine: EngineSection,
    pub metrics: MetricsConfig,
    pub resolve: ResolveConfig,
}

/// What `run` workers read: raw events, or a resolve stage's output (SPEC §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", expecting = "\"raw\" or \"resolved\"")]
pub enum KafkaInput {
    /// Events as producers wrote them; an event without customer_id is its anonymous customer.
    #[default]
    Raw,
    /// The topic `omnimeter resolve` writes: customers resolved across partitions.
    Resolved,
}

/// The `[resolve]` section: `omnimeter resolve`, the identity stage (SPEC §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [resolve] table")]
pub struct ResolveConfig {
    /// Consumer group of the resolvers (not the run workers' group).
    pub group: String,
    /// Where resolved events go: the topic `run` workers read with `kafka.input = "resolved"`.
    pub output_topic: String,
    /// Partitions of the output topic when the resolver creates it; 0 = as many as the raw topic.
    pub output_partitions: i32,
    /// One-partition topic of links and progress that every resolver reads in full.
    pub log_topic: String,
    /// A raw partition caught up and quiet this long stops holding the others back.
    #[serde(with = "duration")]
    pub idle_timeout: DurationMs,
}

impl Default for ResolveConfig {
    fn default() -> Self {
        ResolveConfig {
            group: "omnimeter-resolve".to_owned(),
            output_topic: "omnimeter-resolved".to_owned(),
            output_partitions: 0,
            log_topic: "omnimeter-identity-log".to_owned(),
            idle_timeout: DurationMs(30_000),
        }
    }
}

/// Where events come from and how the consumer group behaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [kafka] table")]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list (librdkafka's `bootstrap.servers`).
    pub brokers: String,
    /// Topics to consume; at least one.
    pub topics: Vec<String>,
    /// Consumer group id; workers with the same group share the partitions.
    pub group: String,
    /// Topic for rejected and late events; empty means none.
    pub dead_letter_topic: String,
    /// How long the broker waits for a silent worker before rebalancing.
    #[serde(with = "duration")]
    pub session_timeout: DurationMs,
    /// Time allowed to flush, checkpoint and commit a revoked partition.
    #[serde(with = "duration")]
    pub drain_timeout: DurationMs,
    /// Longest a fetch waits for data (librdkafka's `fetch.wait.max.ms`).
    #[serde(with = "duration")]
    pub fetch_max_wait: DurationMs,
    /// How often positions are committed (progress, lag) and live metrics updated.
    #[serde(with = "duration")]
    pub commit_interval: DurationMs,
    /// `"stop"` or `"skip"`: what to do when the broker no longer has offsets a worker needs.
    pub on_data_loss: DataLossPolicy,
    /// `"raw"` or `"resolved"` (the output of `omnimeter resolve`, SPEC §6).
    pub input: KafkaInput,
    /// librdkafka properties passed through verbatim (`security.protocol`, `sasl.*`, `ssl.*`).
    pub properties: BTreeMap<String, String>,
}

/// `kafka.on_data_loss` (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", expecting = "\"stop\" or \"skip\"")]
pub enum DataLossPolicy {
    /// Exit 3 naming topic, partition and the missing range.
    #[default]
    Stop,
    /// Go on; log the range, count it in `lost_offsets_total`, write it to `gaps`.
    Skip,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".to_owned(),
            topics: vec!["omnimeter-events".to_owned()],
            group: "omnimeter".to_owned(),
            dead_letter_topic: String::new(),
            session_timeout: DurationMs(45_000),
            drain_timeout: DurationMs(10_000),
            fetch_max_wait: DurationMs(100),
            commit_interval: DurationMs(5_000),
            on_data_loss: DataLossPolicy::Stop,
            input: KafkaInput::Raw,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// The dead-letter topic, if one is configured.
    pub fn dead_letter(&self) -> Option<&str> {
        Some(self.dead_letter_topic.as_str()).filter(|t| !t.is_empty())
    }
}

/// The `[engine]` section: [`EngineConfig`] in config-file form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "an [engine] table")]
pub struct EngineSection {
    #[serde(with = "duration")]
    pub window: DurationMs,
    #[serde(with = "duration")]
    pub gap: DurationMs,
    #[serde(with = "duration")]
    pub thread_gap: DurationMs,
    #[serde(with = "duration")]
    pub allowed_lateness: DurationMs,
    #[serde(with = "duration")]
    pub reply_sla: DurationMs,
    pub max_path: usize,
    /// SPEC §6: how long after an anonymous event a link still claims it.
    #[serde(with = "duration")]
    pub identify_wait: DurationMs,
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection::from(EngineConfig::default())
    }
}

impl From<EngineConfig> for EngineSection {
    fn from(e: EngineConfig) -> Self {
        let EngineConfig {
            window,
            gap,
            thread_gap,
            allowed_lateness,
            reply_sla,
            max_path,
            identify_wait,
            resolve_identities: _,
            resolved_input: _,
        } = e;
        EngineSection { window, gap, thread_gap, allowed_lateness, reply_sla, max_path, identify_wait }
    }
}

/// Resolving identities is on (file mode); a Kafka `run` worker turns it off, as its
/// resolve stage upstream does that work with links from every partition.
impl From<&EngineSection> for EngineConfig {
    fn from(e: &EngineSection) -> Self {
        EngineConfig {
            window: e.window,
            gap: e.gap,
            thread_gap: e.thread_gap,
            allowed_lateness: e.allowed_lateness,
            reply_sla: e.reply_sla,
            max_path: e.max_path,
            identify_wait: e.identify_wait,
            resolve_identities: true,
            resolved_input: false,
        }
    }
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [metrics] table")]
pub struct MetricsConfig {
    /// `host:port` serving `/metrics`, `/healthz` and `/readyz`; empty means off.
    pub addr: String,
    /// Distinct channel/step label values kept before the rest fold into `other`.
    pub label_limit: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { addr: String::new(), label_limit: 64 }
    }
}

impl MetricsConfig {
    /// The address to serve on, or `None` when metrics are off (or `addr` is invalid,
    /// which [`Config::validate`] refuses).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        listen_addr(&self.addr)
    }
}

/// What [`listen_addr`] accepts, for error messages.
pub const LISTEN_ADDR_FORM: &str =
    "an IP address and port, like \"127.0.0.1:9898\" or \"0.0.0.0:9898\", or a port alone for loopback (\"9898\")";

/// A listen address: `HOST:PORT`, or just `PORT` / `:PORT` for loopback (`127.0.0.1`),
/// so metrics are never exposed beyond the host unless an address says so.
pub fn listen_addr(s: &str) -> Option<SocketAddr> {
    let port = s.strip_prefix(':').unwrap_or(s);
    match port.parse::<u16>() {
        Ok(p) => Some(SocketAddr::from(([127, 0, 0, 1], p))),
        Err(_) => s.parse().ok(),
    }
}

/// librdkafka properties that omnimeter sets from its own keys or must control itself.
const RESERVED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "set kafka.brokers instead"),
    ("metadata.broker.list", "set kafka.brokers instead"),
    ("group.id", "set kafka.group instead"),
    ("session.timeout.ms", "set kafka.session_timeout instead"),
    ("fetch.wait.max.ms", "set kafka.fetch_max_wait instead"),
    ("enable.auto.commit", "omnimeter commits positions itself, every kafka.commit_interval"),
    ("enable.auto.offset.store", "omnimeter commits positions itself, every kafka.commit_interval"),
    ("auto.offset.reset", "offsets the broker deleted are never skipped silently: set kafka.on_data_loss instead"),
];

/// Longest Kafka topic name.
const MAX_TOPIC_LEN: usize = 249;

impl Config {
    /// Defaults, overlaid by the file at `path` (if any), overlaid by the `OMNIMETER_*`
    /// variables of `env` (others are ignored), then validated.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let (mut table, origin) = match path {
            Some(path) => {
                let origin = path.display().to_string();
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: origin.clone(), source })?;
                (parse_table(&text, &origin)?, origin)
            }
            None => (Table::new(), "defaults".to_owned()),
        };
        let env: Vec<(String, String)> = env.into_iter().collect();
        let mut overrides = env::apply(&mut table, env.iter().cloned())?;
        overrides.extend(env::apply_aws(&mut table, &env)?);
        let config = deserialize(table, &origin, &overrides)?;
        config.validate()?;
        Ok(config)
    }

    /// Defaults overlaid by TOML `text`, then validated; `origin` names the text in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config = deserialize(parse_table(text, origin)?, origin, &[])?;
        config.validate()?;
        Ok(config)
    }

    /// The engine settings.
    pub fn engine(&self) -> EngineConfig {
        let resolved = self.kafka.input == KafkaInput::Resolved;
        EngineConfig { resolved_input: resolved, resolve_identities: !resolved, ..EngineConfig::from(&self.engine) }
    }

    /// Checks every value's range and the relations between values. Call it again
    /// after changing fields (for example from command-line flags).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        validate_brokers(&k.brokers)?;
        if k.topics.is_empty() {
            return Err(value("kafka.topics", "[]", "at least one topic, like [\"omnimeter-events\"]"));
        }
        for topic in &k.topics {
            validate_topic("kafka.topics", topic)?;
        }
        if k.group.trim().is_empty() {
            return Err(value("kafka.group", "\"\"", "a consumer group id, like \"omnimeter\""));
        }
        if let Some(dlt) = k.dead_letter() {
            validate_topic("kafka.dead_letter_topic", dlt)?;
            if k.topics.iter().any(|t| t == dlt) {
                return Err(value(
                    "kafka.dead_letter_topic",
                    &format!("{dlt:?}"),
                    "a topic that is not also consumed (kafka.topics), or \"\" for none",
                ));
            }
        }
        for (key, d) in [
            ("kafka.session_timeout", k.session_timeout),
            ("kafka.commit_interval", k.commit_interval),
            ("output.file_period", self.output.file_period),
        ] {
            if d.0 <= 0 {
                return Err(value(key, &d.to_string(), "a duration above zero, like 5s"));
            }
        }
        if k.drain_timeout >= k.session_timeout {
            return Err(ConfigError::Order {
                shorter: "kafka.drain_timeout",
                shorter_value: k.drain_timeout.to_string(),
                longer: "kafka.session_timeout",
                longer_value: k.session_timeout.to_string(),
            });
        }
        for name in k.properties.keys() {
            if name.is_empty() {
                return Err(value("kafka.properties", "\"\"", "librdkafka property names, like \"security.protocol\""));
            }
            if let Some((_, reason)) = RESERVED_PROPERTIES.iter().find(|(p, _)| p == name) {
                return Err(ConfigError::Reserved { key: format!("kafka.properties.\"{name}\""), reason });
            }
        }
        self.output.validate()?;
        self.engine().validate()?;
        let r = &self.resolve;
        if r.group.trim().is_empty() {
            return Err(value("resolve.group", "\"\"", "a consumer group id, like \"omnimeter-resolve\""));
        }
        validate_topic("resolve.output_topic", &r.output_topic)?;
        validate_topic("resolve.log_topic", &r.log_topic)?;
        if r.output_topic == r.log_topic {
            return Err(value(
                "resolve.log_topic",
                &format!("{:?}", r.log_topic),
                "a topic other than resolve.output_topic",
            ));
        }
        if !(0..=10_000).contains(&r.output_partitions) {
            return Err(value(
                "resolve.output_partitions",
                &r.output_partitions.to_string(),
                "an integer from 0 (as many as the raw topic) to 10000",
            ));
        }
        if r.idle_timeout.0 <= 0 {
            return Err(value("resolve.idle_timeout", &r.idle_timeout.to_string(), "a duration above zero, like 30s"));
        }
        let m = &self.metrics;
        if !m.addr.is_empty() && listen_addr(&m.addr).is_none() {
            return Err(value(
                "metrics.addr",
                &format!("{:?}", m.addr),
                &format!("{LISTEN_ADDR_FORM}, or \"\" for no metrics endpoint"),
            ));
        }
        if !(1..=10_000).contains(&m.label_limit) {
            return Err(value("metrics.label_limit", &m.label_limit.to_string(), "an integer from 1 to 10000"));
        }
        Ok(())
    }
}

fn value(key: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Value { key: key.to_owned(), value: value.to_owned(), expected: expected.to_owned() }
}

fn validate_brokers(brokers: &str) -> Result<(), ConfigError> {
    let ok_one = |b: &str| {
        b.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && !host.contains(char::is_whitespace) && port.parse::<u16>().is_ok_and(|p| p > 0)
        })
    };
    if brokers.split(',').map(str::trim).all(ok_one) {
        Ok(())
    } else {
        Err(value(
            "kafka.brokers",
            &format!("{brokers:?}"),
            "a comma-separated list of host:port, like \"127.0.0.1:9092\" or \"k1:9092,k2:9092\"",
        ))
    }
}

/// Kafka's rule for topic names: 1–249 of `[a-zA-Z0-9._-]`, and not `.` or `..`.
fn validate_topic(key: &str, topic: &str) -> Result<(), ConfigError> {
    let ok = !topic.is_empty()
        && topic.len() <= MAX_TOPIC_LEN
        && topic != "."
        && topic != ".."
        && topic.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(value(key, &format!("{topic:?}"), "a Kafka topic name: 1 to 249 letters, digits, '.', '_' or '-'"))
    }
}

/// Parses TOML text into a table, with a one-line error at line:column,
/// flattens `[kafka.properties]` so bare dotted keys (`sasl.mechanism = "PLAIN"`)
/// mean the same as quoted ones, and reads `output.dir` (older files) as `output.url`.
fn parse_table(text: &str, origin: &str) -> Result<Table, ConfigError> {
    let mut table: Table = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |span| line_column(text, span.start));
        ConfigError::Syntax { origin: origin.to_owned(), line, column, message: one_line(e.message()) }
    })?;
    if let Some(output) = table.get_mut("output").and_then(Value::as_table_mut)
        && let Some(dir) = output.remove("dir")
    {
        if output.contains_key("url") {
            return Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                key: "output.dir".to_owned(),
                message: "output.url is set too: keep output.url (output.dir is its older name)".to_owned(),
            });
        }
        output.insert("url".to_owned(), dir);
    }
    let props = table.get_mut("kafka").and_then(Value::as_table_mut).and_then(|k| k.get_mut("properties"));
    if let Some(Value::Table(nested)) = props {
        let mut flat = Table::new();
        flatten("", std::mem::take(nested), &mut flat).map_err(|name| ConfigError::Invalid {
            origin: origin.to_owned(),
            key: "kafka.properties".to_owned(),
            message: format!("\"{name}\" is set twice: expected each property once"),
        })?;
        *nested = flat;
    }
    Ok(table)
}

/// Moves nested tables into `out` under dotted names, writing numbers and booleans
/// as the strings librdkafka takes; on a name seen twice, returns it.
fn flatten(prefix: &str, table: Table, out: &mut Table) -> Result<(), String> {
    for (key, v) in table {
        let name = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
        let v = match v {
            Value::Table(t) => {
                flatten(&name, t, out)?;
                continue;
            }
            Value::Integer(i) => Value::String(i.to_string()),
            Value::Float(f) => Value::String(f.to_string()),
            Value::Boolean(b) => Value::String(b.to_string()),
            other => other, // strings pass; arrays and dates are refused by the deserializer
        };
        if out.insert(name.clone(), v).is_some() {
            return Err(name);
        }
    }
    Ok(())
}

/// 1-based line and column (in characters) of byte offset `at` in `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Joins a multi-line message into one line.
fn one_line(message: &str) -> String {
    message.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

/// Deserializes the merged table, blaming errors on the environment variable that
/// set the failing key, or else on the file.
fn deserialize(table: Table, origin: &str, overrides: &[env::Override]) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize(Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let message = one_line(e.inner().message());
        let origin = overrides
            .iter()
            .rev()
            .find(|o| {
                path == o.key || path.starts_with(&format!("{}.", o.key)) || path.starts_with(&format!("{}[", o.key))
            })
            .map_or(origin, |o| o.origin.as_str())
            .to_owned();
        if let Some((field, expected)) = unknown_field(&message) {
            let key = match path.as_str() {
                "." | "" => field,
                p if p.ends_with(&format!(".{field}")) || p == field => p.to_owned(),
                p => format!("{p}.{field}"),
            };
            return ConfigError::UnknownKey { origin, key, expected };
        }
        ConfigError::Invalid { origin, key: path, message }
    })
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" into (`x`, "one of a, b").
fn unknown_field(message: &str) -> Option<(String, String)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, expected) = rest.split_once("`, ")?;
    let expected = expected.strip_prefix("expected ").unwrap_or(expected).replace('`', "");
    Some((field.to_owned(), expected))
}

#[cfg(test)]
mod tests;
