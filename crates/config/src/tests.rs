use std::io::Write;

use super::*;

const EXAMPLE: &str = include_str!("../../../config/omnimeter.example.toml");
const LOCAL: &str = include_str!("../../../config/omnimeter.toml");

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write temp file");
    f
}

/// The error of `text` as a file named `cfg.toml`, as a string.
fn file_err(text: &str) -> String {
    match Config::from_toml_str(text, "cfg.toml") {
        Ok(c) => panic!("accepted {text:?} as {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn env_err(pairs: &[(&str, &str)]) -> String {
    match Config::load(None, vars(pairs)) {
        Ok(c) => panic!("accepted {pairs:?} as {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_are_the_documented_values_and_valid() {
    let c = Config::default();
    assert_eq!(c.kafka.brokers, "127.0.0.1:9092");
    assert_eq!(c.kafka.topics, ["omnimeter-events"]);
    assert_eq!(c.kafka.group, "omnimeter");
    assert_eq!(c.kafka.dead_letter(), None);
    assert_eq!(c.kafka.session_timeout, DurationMs(45_000));
    assert_eq!(c.kafka.drain_timeout, DurationMs(10_000));
    assert_eq!(c.kafka.fetch_max_wait, DurationMs(100));
    assert!(c.kafka.properties.is_empty());
    assert_eq!(c.output.url, "./omnimeter-out");
    assert_eq!(c.output.location().expect("valid"), OutputLocation::Local("./omnimeter-out".into()));
    assert_eq!(c.kafka.commit_interval, DurationMs(5_000));
    assert_eq!(c.output.file_period, DurationMs(3_600_000));
    assert_eq!(c.output.file_rows, 100_000);
    assert_eq!(c.kafka.on_data_loss, crate::DataLossPolicy::Stop);
    assert_eq!(c.output.s3, S3Config::default());
    assert!(!c.output.s3.allow_http);
    assert_eq!(c.engine(), EngineConfig::default());
    assert_eq!(c.metrics.addr, "");
    assert_eq!(c.metrics.socket_addr(), None);
    assert_eq!(c.metrics.label_limit, 64);
    c.validate().expect("defaults are valid");
    assert_eq!(Config::load(None, vars(&[])).expect("no file, no env"), c);
    assert_eq!(Config::from_toml_str("", "empty.toml").expect("empty file"), c);
}

#[test]
fn example_file_is_exactly_the_defaults() {
    let path = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")), std::path::PathBuf::from)
        .join("../../config/omnimeter.example.toml");
    assert_eq!(Config::load(Some(&path), vars(&[])).expect("example loads"), Config::default());
}

#[test]
fn example_file_writes_every_key() {
    let table: Table = toml::from_str(EXAMPLE).expect("example parses");
    for (section, key, _) in env::KEYS {
        let found = section.split('.').try_fold(&table, |t, part| t.get(part)?.as_table()).and_then(|s| s.get(*key));
        assert!(found.is_some(), "config/omnimeter.example.toml lacks {section}.{key}");
    }
    let props = table.get("kafka").and_then(|k| k.get("properties"));
    assert!(props.is_some_and(Value::is_table), "example lacks [kafka.properties]");
}

#[test]
fn env_keys_list_every_field() {
    fn leaves(prefix: &str, table: &Table, out: &mut Vec<String>) {
        for (k, v) in table {
            let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            match v.as_table() {
                Some(t) if key != "kafka.properties" => leaves(&key, t, out),
                _ if key == "kafka.properties" => {}
                _ => out.push(key),
            }
        }
    }
    let table = Table::try_from(Config::default()).expect("serializes");
    let mut fields = Vec::new();
    leaves("", &table, &mut fields);
    let mut keys: Vec<String> = env::KEYS.iter().map(|(s, k, _)| format!("{s}.{k}")).collect();
    fields.sort();
    keys.sort();
    assert_eq!(fields, keys);
}

#[test]
fn defaults_round_trip_through_toml() {
    let text = toml::to_string(&Config::default()).expect("serializes");
    assert_eq!(Config::from_toml_str(&text, "round-trip").expect("reads back"), Config::default());
}

#[test]
fn local_dev_config_loads() {
    let c = Config::from_toml_str(LOCAL, "config/omnimeter.toml").expect("local config");
    assert_eq!(c.kafka.brokers, "127.0.0.1:9092");
    assert_eq!(c.kafka.topics, ["omnimeter-events"]);
    assert_eq!(c.output.url, "./omnimeter-out");
}

#[test]
fn file_overrides_defaults_and_keeps_the_rest() {
    let f = file(
        r#"
[kafka]
brokers = "k1:9092, k2:9093"
topics = ["a", "b"]
dead_letter_topic = "omnimeter-dlq"
drain_timeout = "20s"

[output]
dir = "/data/out"

[engine]
gap = "45m"
max_path = 20

[metrics]
addr = "0.0.0.0:9898"
label_limit = 100
"#,
    );
    let c = Config::load(Some(f.path()), vars(&[])).expect("loads");
    assert_eq!(c.kafka.brokers, "k1:9092, k2:9093");
    assert_eq!(c.kafka.topics, ["a", "b"]);
    assert_eq!(c.kafka.dead_letter(), Some("omnimeter-dlq"));
    assert_eq!(c.kafka.drain_timeout, DurationMs(20_000));
    assert_eq!(c.kafka.group, "omnimeter", "untouched keys keep their default");
    assert_eq!(c.output.url, "/data/out", "output.dir, the older name, still works");
    assert_eq!(c.engine.gap, DurationMs(45 * 60_000));
    assert_eq!(c.engine().max_path, 20);
    assert_eq!(c.engine.window, DurationMs(60_000));
    assert_eq!(c.metrics.socket_addr(), Some("0.0.0.0:9898".parse().expect("addr")));
    assert_eq!(c.metrics.label_limit, 100);
}

#[test]
fn env_beats_file_and_other_variables_are_ignored() {
    let f = file("[kafka]\nbrokers = \"file:9092\"\ngroup = \"from-file\"\n[engine]\ngap = \"10m\"\n");
    let env = vars(&[
        ("OMNIMETER_KAFKA_BROKERS", "env1:9092,env2:9092"),
        ("OMNIMETER_KAFKA_TOPICS", "t1, t2,,"),
        ("OMNIMETER_OUTPUT_DIR", "/env/out"),
        ("OMNIMETER_ENGINE_GAP", "2h"),
        ("OMNIMETER_ENGINE_MAX_PATH", "7"),
        ("OMNIMETER_METRICS_ADDR", "127.0.0.1:0"),
        ("OMNIMETER_METRICS_LABEL_LIMIT", " 5 "),
        ("OMNIMETER_LOG", "debug"),
        ("PATH", "/usr/bin"),
        ("omnimeter_kafka_group", "ignored: not the OMNIMETER_ prefix"),
    ]);
    let c = Config::load(Some(f.path()), env).expect("loads");
    assert_eq!(c.kafka.brokers, "env1:9092,env2:9092");
    assert_eq!(c.kafka.group, "from-file");
    assert_eq!(c.kafka.topics, ["t1", "t2"]);
    assert_eq!(c.output.url, "/env/out", "OMNIMETER_OUTPUT_DIR, the older name, still works");
    assert_eq!(c.engine.gap, DurationMs(2 * 3_600_000));
    assert_eq!(c.engine.max_path, 7);
    assert_eq!(c.metrics.addr, "127.0.0.1:0");
    assert_eq!(c.metrics.label_limit, 5);
}

#[test]
fn unknown_keys_in_the_file_are_named() {
    let e = file_err("[kafka]\nbrokerz = \"x:1\"\n");
    assert!(
        e.starts_with(
            "cfg.toml: unknown key kafka.brokerz (expected one of brokers, topics, group, dead_letter_topic,"
        ),
        "{e}"
    );
    let e = file_err("[kafkaa]\nbrokers = \"x:1\"\n");
    assert!(
        e.starts_with("cfg.toml: unknown key kafkaa (expected one of kafka, output, engine, metrics, resolve)"),
        "{e}"
    );
    let e = file_err("[engine]\nwindows = \"1m\"\n");
    assert!(e.starts_with("cfg.toml: unknown key engine.windows (expected one of window, gap,"), "{e}");
}

#[test]
fn unknown_omnimeter_variables_are_named() {
    let e = env_err(&[("OMNIMETER_KAFKA_BROKERZ", "x:1")]);
    assert_eq!(e, "OMNIMETER_KAFKA_BROKERZ: unknown setting (did you mean OMNIMETER_KAFKA_BROKERS?)");
    let e = env_err(&[("OMNIMETER_WHATEVER_ELSE_ENTIRELY", "1")]);
    assert!(
        e.starts_with("OMNIMETER_WHATEVER_ELSE_ENTIRELY: unknown setting (expected OMNIMETER_<SECTION>_<KEY>"),
        "{e}"
    );
    let e = env_err(&[("OMNIMETER_KAFKA_PROPERTIES_", "x")]);
    assert!(e.starts_with("OMNIMETER_KAFKA_PROPERTIES_: unknown setting"), "{e}");
}

#[test]
fn bad_durations_name_the_key_and_the_form() {
    assert_eq!(
        file_err("[engine]\ngap = \"30x\"\n"),
        "cfg.toml: engine.gap: invalid duration \"30x\": expected an integer and a unit, like 500ms, 5s, 30m, 24h or 7d"
    );
    let e = file_err("[kafka]\nsession_timeout = 45\n");
    assert!(
        e.starts_with("cfg.toml: kafka.session_timeout: invalid type: integer `45`, expected a duration string"),
        "{e}"
    );
    let f = file("[engine]\ngap = \"10m\"\n");
    let e = Config::load(Some(f.path()), vars(&[("OMNIMETER_ENGINE_GAP", "soon")])).expect_err("bad env duration");
    assert_eq!(
        e.to_string(),
        "OMNIMETER_ENGINE_GAP=soon: engine.gap: invalid duration \"soon\": expected an integer and a unit, like 500ms, 5s, 30m, 24h or 7d"
    );
}

#[test]
fn bad_integers_name_the_variable_or_key() {
    assert_eq!(env_err(&[("OMNIMETER_ENGINE_MAX_PATH", "abc")]), "OMNIMETER_ENGINE_MAX_PATH=abc: expected an integer");
    let e = env_err(&[("OMNIMETER_METRICS_LABEL_LIMIT", "-3")]);
    assert!(e.starts_with("OMNIMETER_METRICS_LABEL_LIMIT=-3: metrics.label_limit: invalid value: integer `-3`"), "{e}");
    assert_eq!(file_err("[engine]\nmax_path = 0\n"), "engine.max_path = 0: expected an integer from 1 to 1024");
    assert_eq!(
        file_err("[metrics]\nlabel_limit = 10001\n"),
        "metrics.label_limit = 10001: expected an integer from 1 to 10000"
    );
    assert_eq!(file_err("kafka = 3\n"), "cfg.toml: kafka: invalid type: integer `3`, expected a [kafka] table");
    let e = file_err("[kafka]\nbrokers = 5\n");
    assert_eq!(e, "cfg.toml: kafka.brokers: invalid type: integer `5`, expected a string");
}

#[test]
fn drain_timeout_must_fit_in_the_session_timeout() {
    assert_eq!(
        file_err("[kafka]\ndrain_timeout = \"60s\"\n"),
        "kafka.drain_timeout (1m) must be shorter than kafka.session_timeout (45s)"
    );
    assert_eq!(
        file_err("[kafka]\ndrain_timeout = \"45s\"\n"),
        "kafka.drain_timeout (45s) must be shorter than kafka.session_timeout (45s)"
    );
    let ok = Config::load(
        None,
        vars(&[("OMNIMETER_KAFKA_SESSION_TIMEOUT", "2m"), ("OMNIMETER_KAFKA_DRAIN_TIMEOUT", "90s")]),
    );
    assert_eq!(ok.expect("fits").kafka.drain_timeout, DurationMs(90_000));
}

#[test]
fn bad_metrics_addr_is_refused() {
    for bad in ["localhost:9898", "9898x", "0.0.0.0", "1.2.3.4:99999"] {
        let e = file_err(&format!("[metrics]\naddr = {bad:?}\n"));
        assert!(e.starts_with(&format!("metrics.addr = {bad:?}: expected an IP address and port")), "{e}");
    }
    let c = Config::from_toml_str("[metrics]\naddr = \"[::1]:9898\"\n", "v6").expect("IPv6 address");
    assert!(c.metrics.socket_addr().is_some());
}

#[test]
fn empty_and_malformed_topics_are_refused() {
    assert!(file_err("[kafka]\ntopics = []\n").starts_with("kafka.topics = []: expected at least one topic"));
    assert!(
        env_err(&[("OMNIMETER_KAFKA_TOPICS", " , ")]).starts_with("kafka.topics = []: expected at least one topic")
    );
    let e = file_err("[kafka]\ntopics = [\"has space\"]\n");
    assert!(e.starts_with("kafka.topics = \"has space\": expected a Kafka topic name"), "{e}");
    let e = file_err("[kafka]\ndead_letter_topic = \"omnimeter-events\"\n");
    assert!(
        e.starts_with("kafka.dead_letter_topic = \"omnimeter-events\": expected a topic that is not also consumed"),
        "{e}"
    );
}

#[test]
fn other_values_are_checked() {
    for bad in ["", "host", "host:", ":9092", "host:0", "a:1,,b:2"] {
        let e = file_err(&format!("[kafka]\nbrokers = {bad:?}\n"));
        assert!(e.starts_with("kafka.brokers = "), "{bad}: {e}");
    }
    assert!(file_err("[kafka]\ngroup = \" \"\n").starts_with("kafka.group = \"\": expected a consumer group id"));
    assert!(file_err("[output]\ndir = \"\"\n").starts_with("output.url = \"\": expected a directory path"));
    assert!(
        file_err("[kafka]\ncommit_interval = \"0s\"\n")
            .starts_with("kafka.commit_interval = 0ms: expected a duration above zero")
    );
    assert_eq!(file_err("[engine]\nwindow = \"0s\"\n"), "engine.window = 0ms: expected a duration above zero, like 1m");
    assert!(file_err("[output]\nfile_rows = 0\n").starts_with("output.file_rows = 0: expected rows per partition"));
    let e = file_err("[kafka]\non_data_loss = \"ignore\"\n");
    assert!(e.contains("kafka.on_data_loss") && e.contains("stop") && e.contains("skip"), "{e}");
}

#[test]
fn properties_pass_through_dotted_keys() {
    let text = r#"
[kafka.properties]
"security.protocol" = "SASL_SSL"
sasl.mechanism = "SCRAM-SHA-512"
sasl.username = "me"
"socket.timeout.ms" = 60000
"enable.ssl.certificate.verification" = false
"#;
    let c = Config::from_toml_str(text, "props.toml").expect("properties");
    let props: Vec<(&str, &str)> = c.kafka.properties.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        props,
        [
            ("enable.ssl.certificate.verification", "false"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "me"),
            ("security.protocol", "SASL_SSL"),
            ("socket.timeout.ms", "60000"),
        ]
    );
    let f = file(text);
    let env = vars(&[
        ("OMNIMETER_KAFKA_PROPERTIES_SASL_PASSWORD", "s3cret"),
        ("OMNIMETER_KAFKA_PROPERTIES_SASL_USERNAME", "env"),
    ]);
    let c = Config::load(Some(f.path()), env).expect("env properties");
    assert_eq!(c.kafka.properties["sasl.password"], "s3cret");
    assert_eq!(c.kafka.properties["sasl.username"], "env");
    assert_eq!(c.kafka.properties["sasl.mechanism"], "SCRAM-SHA-512");
}

#[test]
fn properties_that_omnimeter_sets_itself_are_refused() {
    let e = file_err("[kafka.properties]\n\"enable.auto.commit\" = \"true\"\n");
    assert!(
        e.starts_with(
            "kafka.properties.\"enable.auto.commit\" is set by omnimeter: omnimeter commits positions itself"
        ),
        "{e}"
    );
    let e = file_err("[kafka.properties]\n\"auto.offset.reset\" = \"earliest\"\n");
    assert!(e.ends_with("set kafka.on_data_loss instead"), "{e}");
    let e = file_err("[kafka.properties]\ngroup.id = \"x\"\n");
    assert_eq!(e, "kafka.properties.\"group.id\" is set by omnimeter: set kafka.group instead");
    let e = file_err("[kafka.properties]\n\"sasl.mechanism\" = \"A\"\nsasl.mechanism = \"B\"\n");
    assert_eq!(e, "cfg.toml: kafka.properties: \"sasl.mechanism\" is set twice: expected each property once");
    let e = file_err("[kafka.properties]\n\"ssl.ca.location\" = [\"a\"]\n");
    assert!(
        e.starts_with("cfg.toml: kafka.properties.ssl.ca.location: invalid type: sequence, expected a string"),
        "{e}"
    );
}

#[test]
fn syntax_errors_give_line_and_column_on_one_line() {
    let e = file_err("[kafka]\nbrokers = \"127.0.0.1:9092\"\ngroup = omnimeter\n");
    assert!(e.starts_with("cfg.toml:3:9: TOML syntax error: "), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn unreadable_file_names_the_path() {
    let missing = Path::new("/nonexistent/omnimeter.toml");
    let e = Config::load(Some(missing), vars(&[])).expect_err("missing file").to_string();
    assert!(e.starts_with("/nonexistent/omnimeter.toml: cannot read the config file: "), "{e}");
}

#[test]
fn every_error_message_is_one_line() {
    let files = [
        "[kafka]\nbrokerz = 1\n",
        "[engine]\ngap = \"30x\"\n",
        "[engine]\ngap = [1, 2]\n",
        "[kafka]\ndrain_timeout = \"1h\"\n",
        "[metrics]\naddr = \"nope\"\n",
        "[kafka]\ntopics = []\n",
        "[kafka]\ntopics = \"not-a-list\"\n",
        "kafka = 3\n",
        "[kafka\n",
        "a = \"unterminated\n",
        "[kafka]\nbrokers = \"a:1\"\nbrokers = \"b:1\"\n",
        "[engine]\nmax_path = -1\n",
        "[kafka.properties]\n\"bootstrap.servers\" = \"x:1\"\n",
    ];
    for text in files {
        let e = file_err(text);
        assert!(!e.contains('\n') && !e.is_empty(), "{text:?} gave {e:?}");
    }
    let envs: [&[(&str, &str)]; 4] = [
        &[("OMNIMETER_NOPE", "1")],
        &[("OMNIMETER_ENGINE_MAX_PATH", "1.5")],
        &[("OMNIMETER_ENGINE_WINDOW", "1 minute")],
        &[("OMNIMETER_METRICS_ADDR", "x")],
    ];
    for pairs in envs {
        let e = env_err(pairs);
        assert!(!e.contains('\n') && !e.is_empty(), "{pairs:?} gave {e:?}");
    }
}

#[test]
fn a_metrics_port_alone_binds_loopback() {
    use std::net::SocketAddr;
    let at = |s: &str| crate::listen_addr(s);
    assert_eq!(at("9898"), Some(SocketAddr::from(([127, 0, 0, 1], 9898))));
    assert_eq!(at(":9898"), Some(SocketAddr::from(([127, 0, 0, 1], 9898))));
    assert_eq!(at("0.0.0.0:9898"), Some(SocketAddr::from(([0, 0, 0, 0], 9898))));
    assert_eq!(at("nowhere"), None);
}

#[test]
fn output_urls_are_paths_file_urls_or_buckets() {
    let parse = OutputLocation::parse;
    let local = |p: &str| Ok(OutputLocation::Local(p.into()));
    let s3 = |b: &str, p: &str| Ok(OutputLocation::S3 { bucket: b.to_owned(), prefix: p.to_owned() });
    assert_eq!(parse("./out"), local("./out"));
    assert_eq!(parse("/var/lib/omnimeter"), local("/var/lib/omnimeter"));
    assert_eq!(parse("file:///var/lib/omni%20meter"), local("/var/lib/omni meter"));
    assert_eq!(parse("file://localhost/tmp/x"), local("/tmp/x"));
    assert_eq!(parse("s3://omni-out"), s3("omni-out", ""));
    assert_eq!(parse("s3://omni-out/"), s3("omni-out", ""));
    assert_eq!(parse("s3://omni.out-1/team/prod/"), s3("omni.out-1", "team/prod"));
    assert_eq!(parse("S3://omni-out/a"), s3("omni-out", "a"), "the scheme is case-insensitive");
    for bad in [
        "",
        " ",
        "gs://bucket/x",
        "s3:/bucket/x",
        "file:/tmp/x",
        "file://tmp/x",
        "file:///tmp/%zz",
        "s3://",
        "s3://ab",
        "s3://Upper-Case",
        "s3://under_score/x",
        "s3://-dash/x",
        "s3://a..b/x",
        "s3://bucket/a//b",
        "s3://bucket/a/../b",
        "s3://bucket/a?versionId=1",
    ] {
        assert!(parse(bad).is_err(), "{bad:?} accepted as {:?}", parse(bad));
    }
}

#[test]
fn a_bad_output_url_is_one_line_naming_the_key_and_the_form() {
    assert_eq!(
        file_err("[output]\nurl = \"gs://b/x\"\n"),
        "output.url = \"gs://b/x\": expected a directory path like \"./omnimeter-out\", file:///absolute/path or s3://bucket/prefix"
    );
    let e = env_err(&[("OMNIMETER_OUTPUT_URL", "s3://Bad_Bucket/x")]);
    assert!(
        e.starts_with("output.url = \"s3://Bad_Bucket/x\": expected s3://bucket/prefix, with a bucket name of 3 to 63"),
        "{e}"
    );
    assert!(
        file_err("[output]\nurl = \"file://relative\"\n").contains("expected file:///absolute/path (three slashes")
    );
    assert_eq!(
        file_err("[output]\ndir = \"/a\"\nurl = \"/b\"\n"),
        "cfg.toml: output.dir: output.url is set too: keep output.url (output.dir is its older name)"
    );
    assert_eq!(
        env_err(&[("OMNIMETER_OUTPUT_DIR", "/a"), ("OMNIMETER_OUTPUT_URL", "/b")]),
        "OMNIMETER_OUTPUT_URL: output.url: also set by OMNIMETER_OUTPUT_DIR: set one of them"
    );
    let e = file_err("[output.s3]\nendpoint = 9000\n");
    assert_eq!(e, "cfg.toml: output.s3.endpoint: invalid type: integer `9000`, expected a string");
    let e = file_err("[output.s3]\nbucket = \"x\"\n");
    assert!(e.starts_with("cfg.toml: unknown key output.s3.bucket (expected one of endpoint, region,"), "{e}");
}

#[test]
fn s3_settings_come_from_the_file_then_omnimeter_variables_then_aws_variables() {
    let f = file("[output]\nurl = \"s3://omni-out/prod\"\n[output.s3]\nregion = \"eu-west-1\"\nendpoint = \"\"\n");
    let env = vars(&[
        ("AWS_REGION", "us-west-2"),
        ("AWS_DEFAULT_REGION", "ap-south-1"),
        ("AWS_ENDPOINT_URL", "https://generic.example.com"),
        ("AWS_ENDPOINT_URL_S3", "https://s3.example.com"),
        ("AWS_ACCESS_KEY_ID", "AKIDAWS"),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
        ("OMNIMETER_OUTPUT_S3_ACCESS_KEY_ID", "AKIDOMNI"),
        ("OMNIMETER_OUTPUT_S3_SECRET_ACCESS_KEY", "omni-secret"),
    ]);
    let c = Config::load(Some(f.path()), env).expect("loads");
    assert_eq!(
        c.output.location().expect("valid"),
        OutputLocation::S3 { bucket: "omni-out".into(), prefix: "prod".into() }
    );
    let s3 = &c.output.s3;
    assert_eq!(s3.region, "eu-west-1", "the file beats AWS_REGION");
    assert_eq!(
        s3.endpoint, "https://s3.example.com",
        "an empty key is unset: AWS_ENDPOINT_URL_S3 beats AWS_ENDPOINT_URL"
    );
    assert_eq!(s3.access_key_id, "AKIDOMNI", "OMNIMETER_* beats AWS_*");
    assert_eq!(s3.secret_access_key.get(), Some("omni-secret"));
    assert_eq!(s3.session_token.get(), None);
    assert!(!s3.allow_http);

    let env = vars(&[
        ("OMNIMETER_OUTPUT_URL", "s3://omni-out"),
        ("AWS_DEFAULT_REGION", "ap-south-1"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "AKIDAWS"),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
        ("AWS_SESSION_TOKEN", "tok"),
    ]);
    let c = Config::load(None, env).expect("loads");
    let s3 = &c.output.s3;
    assert_eq!((s3.region.as_str(), s3.endpoint.as_str()), ("ap-south-1", "http://127.0.0.1:9000"));
    assert!(s3.allow_http);
    assert_eq!((s3.access_key_id.as_str(), s3.secret_access_key.get()), ("AKIDAWS", Some("aws-secret")));
    assert_eq!(s3.session_token.get(), Some("tok"));
    assert!(
        !format!("{c:?}").contains("aws-secret") && !format!("{c:?}").contains("tok\""),
        "secrets stay out of Debug"
    );

    let e = env_err(&[("AWS_ALLOW_HTTP", "maybe")]);
    assert_eq!(e, "AWS_ALLOW_HTTP=maybe: expected true or false");
    let c = Config::load(None, vars(&[("OMNIMETER_OUTPUT_S3_ALLOW_HTTP", "1")])).expect("a bool");
    assert!(c.output.s3.allow_http);
}

#[test]
fn s3_settings_are_checked_for_a_bucket_only_and_secrets_are_never_echoed() {
    // A local output ignores whatever AWS_* the environment happens to hold.
    Config::load(None, vars(&[("AWS_ENDPOINT_URL", "http://x:1")])).expect("local output, S3 keys unused");
    let bucket = ("OMNIMETER_OUTPUT_URL", "s3://omni-out/p");
    let e = env_err(&[bucket, ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")]);
    assert_eq!(
        e,
        "output.s3.endpoint = \"http://127.0.0.1:9000\": expected an https:// URL, or output.s3.allow_http = true (AWS_ALLOW_HTTP=true) for plain HTTP"
    );
    let e = env_err(&[bucket, ("OMNIMETER_OUTPUT_S3_ENDPOINT", "minio:9000")]);
    assert!(e.starts_with("output.s3.endpoint = \"minio:9000\": expected a URL like"), "{e}");
    let e = env_err(&[bucket, ("AWS_SECRET_ACCESS_KEY", "hush-hush")]);
    assert!(e.starts_with("output.s3.access_key_id = \"\": expected a key id with"), "{e}");
    let e = env_err(&[bucket, ("AWS_ACCESS_KEY_ID", "AKID")]);
    assert!(e.starts_with("output.s3.secret_access_key = \"\": expected a secret key with"), "{e}");
    let e = env_err(&[
        bucket,
        ("OMNIMETER_OUTPUT_S3_SECRET_ACCESS_KEY", "hush-hush"),
        ("OMNIMETER_OUTPUT_S3_ACCESS_KEY_ID", ""),
    ]);
    assert!(!e.contains("hush-hush"), "{e}");
    Config::load(None, vars(&[bucket])).expect("no keys: the instance's role");
}
