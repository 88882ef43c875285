//! `OMNIMETER_<SECTION>_<KEY>` environment overrides, written into the parsed TOML
//! table before it is deserialized, so they get the same checks as the file; then
//! the standard `AWS_*` variables for `[output.s3]` keys that nothing else set.

use toml::{Table, Value};

use crate::error::ConfigError;

/// Prefix of every variable this crate reads.
pub const PREFIX: &str = "OMNIMETER_";

/// `OMNIMETER_*` variables that other parts of omnimeter read; they are not settings.
pub const NOT_SETTINGS: &[&str] = &["OMNIMETER_LOG"];

/// Prefix of variables that set one librdkafka property each: the rest of the name,
/// lower-cased with `_` read as `.`, is the property (`..._SASL_PASSWORD` → `sasl.password`).
pub const PROPERTY_PREFIX: &str = "OMNIMETER_KAFKA_PROPERTIES_";

/// How a variable's text becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Kept as a string (durations included: they are parsed by the deserializer).
    Text,
    /// Parsed as a decimal integer.
    Integer,
    /// Split at commas into a list of strings, blanks dropped.
    List,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`), any case.
    Bool,
}

/// Every scalar setting as `(section, key, kind)`; a nested section is dotted
/// (`output.s3`). A test checks that it matches the fields of [`crate::Config`].
pub(crate) const KEYS: &[(&str, &str, Kind)] = &[
    ("kafka", "brokers", Kind::Text),
    ("kafka", "topics", Kind::List),
    ("kafka", "group", Kind::Text),
    ("kafka", "dead_letter_topic", Kind::Text),
    ("kafka", "session_timeout", Kind::Text),
    ("kafka", "drain_timeout", Kind::Text),
    ("kafka", "fetch_max_wait", Kind::Text),
    ("kafka", "commit_interval", Kind::Text),
    ("kafka", "on_data_loss", Kind::Text),
    ("output", "url", Kind::Text),
    ("output", "file_period", Kind::Text),
    ("output", "file_rows", Kind::Integer),
    ("output.s3", "endpoint", Kind::Text),
    ("output.s3", "region", Kind::Text),
    ("output.s3", "access_key_id", Kind::Text),
    ("output.s3", "secret_access_key", Kind::Text),
    ("output.s3", "session_token", Kind::Text),
    ("output.s3", "allow_http", Kind::Bool),
    ("engine", "window", Kind::Text),
    ("engine", "gap", Kind::Text),
    ("engine", "thread_gap", Kind::Text),
    ("engine", "allowed_lateness", Kind::Text),
    ("engine", "reply_sla", Kind::Text),
    ("engine", "max_path", Kind::Integer),
    ("engine", "identify_wait", Kind::Text),
    ("kafka", "input", Kind::Text),
    ("resolve", "group", Kind::Text),
    ("resolve", "output_topic", Kind::Text),
    ("resolve", "output_partitions", Kind::Integer),
    ("resolve", "log_topic", Kind::Text),
    ("resolve", "idle_timeout", Kind::Text),
    ("metrics", "addr", Kind::Text),
    ("metrics", "label_limit", Kind::Integer),
];

/// Every config key as `section.key` (`kafka.brokers`, `output.s3.bucket`, …): what
/// the users' reference must list.
pub fn key_names() -> impl Iterator<Item = String> {
    KEYS.iter().map(|(section, key, _)| format!("{section}.{key}"))
}

/// Older variable names still read, as `(variable, section, key)`.
const ALIASES: &[(&str, &str, &str)] = &[("OMNIMETER_OUTPUT_DIR", "output", "url")];

/// Keys whose values are never echoed in errors.
const SECRETS: &[&str] = &["output.s3.secret_access_key", "output.s3.session_token"];

/// The standard AWS variables behind each `[output.s3]` key, first found wins.
/// They fill only keys that neither the file nor an `OMNIMETER_*` variable set
/// (`""` and `false` count as unset).
pub const AWS_FALLBACKS: &[(&str, &[&str])] = &[
    ("endpoint", &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]),
    ("region", &["AWS_REGION", "AWS_DEFAULT_REGION"]),
    ("access_key_id", &["AWS_ACCESS_KEY_ID"]),
    ("secret_access_key", &["AWS_SECRET_ACCESS_KEY"]),
    ("session_token", &["AWS_SESSION_TOKEN"]),
    ("allow_http", &["AWS_ALLOW_HTTP"]),
];

/// The variable that overrides `section.key`.
pub(crate) fn var_name(section: &str, key: &str) -> String {
    format!("{PREFIX}{}_{}", section.to_ascii_uppercase().replace('.', "_"), key.to_ascii_uppercase())
}

/// A key path (`engine.gap`) set from the environment, and the `VAR=value` to blame
/// when its value is refused later.
#[derive(Debug, Clone)]
pub(crate) struct Override {
    pub(crate) key: String,
    pub(crate) origin: String,
}

/// Writes every `OMNIMETER_*` variable of `env` into `table`, in name order so the
/// first error is always the same one. Other variables are ignored.
pub(crate) fn apply(
    table: &mut Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<Override>, ConfigError> {
    let mut vars: Vec<(String, String)> =
        env.into_iter().filter(|(k, _)| k.starts_with(PREFIX) && !NOT_SETTINGS.contains(&k.as_str())).collect();
    vars.sort();
    let mut applied = Vec::with_capacity(vars.len());
    for (var, text) in vars {
        if let Some(rest) = var.strip_prefix(PROPERTY_PREFIX) {
            let property = property_name(rest).ok_or_else(|| ConfigError::UnknownEnv {
                var: var.clone(),
                hint: "expected OMNIMETER_KAFKA_PROPERTIES_<NAME> with NAME in upper case, like \
                       OMNIMETER_KAFKA_PROPERTIES_SASL_PASSWORD for sasl.password"
                    .to_owned(),
            })?;
            // The value is a string and may be a secret: never echo it.
            applied.push(Override { key: format!("kafka.properties.{property}"), origin: var.clone() });
            if let Some(props) = sub_table(table, "kafka").and_then(|kafka| sub_table(kafka, "properties")) {
                props.insert(property, Value::String(text));
            }
            continue;
        }
        let alias = ALIASES.iter().find(|(v, ..)| *v == var).map(|&(_, s, k)| (s, k));
        let Some((sec, key, kind)) =
            KEYS.iter().find(|(s, k, _)| var_name(s, k) == var || alias == Some((*s, *k))).copied()
        else {
            return Err(unknown(&var));
        };
        let full_key = format!("{sec}.{key}");
        if let Some(other) = applied.iter().find(|o: &&Override| o.key == full_key) {
            return Err(ConfigError::Invalid {
                origin: var.clone(),
                key: full_key,
                message: format!("also set by {}: set one of them", other.origin.split('=').next().unwrap_or_default()),
            });
        }
        let value = typed(&var, &text, kind)?;
        let origin = if SECRETS.contains(&full_key.as_str()) { var.clone() } else { format!("{var}={text}") };
        applied.push(Override { key: full_key, origin });
        // A section that the file wrote as a non-table is reported by the deserializer.
        if let Some(t) = section(table, sec) {
            t.insert(key.to_owned(), value);
        }
    }
    Ok(applied)
}

/// Fills the `[output.s3]` keys that are still unset from the standard AWS
/// variables ([`AWS_FALLBACKS`]).
pub(crate) fn apply_aws(table: &mut Table, env: &[(String, String)]) -> Result<Vec<Override>, ConfigError> {
    let mut applied = Vec::new();
    for (key, vars) in AWS_FALLBACKS {
        let Some((var, text)) = vars.iter().find_map(|v| env.iter().find(|(k, t)| k == v && !t.trim().is_empty()))
        else {
            continue;
        };
        let Some(s3) = section(table, "output.s3") else { continue };
        // "" and false are the defaults, as written in the example file: still unset.
        let set = match s3.get(*key) {
            Some(Value::String(v)) => !v.is_empty(),
            Some(Value::Boolean(b)) => *b,
            Some(_) => true, // a wrong type, reported by the deserializer
            None => false,
        };
        if set {
            continue;
        }
        let full_key = format!("output.s3.{key}");
        let kind = KEYS.iter().find(|(s, k, _)| *s == "output.s3" && k == key).map_or(Kind::Text, |e| e.2);
        s3.insert((*key).to_owned(), typed(var, text, kind)?);
        let origin = if SECRETS.contains(&full_key.as_str()) { var.clone() } else { format!("{var}={text}") };
        applied.push(Override { key: full_key, origin });
    }
    Ok(applied)
}

/// A variable's text as the TOML value its key takes.
fn typed(var: &str, text: &str, kind: Kind) -> Result<Value, ConfigError> {
    let refuse = |expected| ConfigError::EnvValue { var: var.to_owned(), value: text.to_owned(), expected };
    Ok(match kind {
        Kind::Text => Value::String(text.to_owned()),
        Kind::Integer => Value::Integer(text.trim().parse().map_err(|_| refuse("an integer"))?),
        Kind::List => Value::Array(
            text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| Value::String(s.to_owned())).collect(),
        ),
        Kind::Bool => Value::Boolean(match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(refuse("true or false")),
        }),
    })
}

/// The table at the dotted path `name` of `table`, created when missing; `None`
/// when some part of the path is not a table.
fn section<'t>(table: &'t mut Table, name: &str) -> Option<&'t mut Table> {
    name.split('.').try_fold(table, |t, part| sub_table(t, part))
}

/// The table `name` of `table`, created when missing; `None` when it is not a table.
fn sub_table<'t>(table: &'t mut Table, name: &str) -> Option<&'t mut Table> {
    table.entry(name.to_owned()).or_insert_with(|| Value::Table(Table::new())).as_table_mut()
}

/// `SASL_PASSWORD` → `sasl.password`; `None` unless upper-case letters, digits and
/// single `_` separators.
fn property_name(rest: &str) -> Option<String> {
    let ok = !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && rest.split('_').all(|part| !part.is_empty());
    ok.then(|| rest.to_ascii_lowercase().replace('_', "."))
}

/// The error for a variable that names no setting, with the closest real name.
fn unknown(var: &str) -> ConfigError {
    let best = KEYS.iter().map(|(s, k, _)| var_name(s, k)).map(|name| (edit_distance(&name, var), name)).min();
    let hint = match best {
        Some((d, name)) if d <= 3 => format!("did you mean {name}?"),
        _ => "expected OMNIMETER_<SECTION>_<KEY> for a key of config/omnimeter.example.toml, \
              like OMNIMETER_KAFKA_BROKERS"
            .to_owned(),
    };
    ConfigError::UnknownEnv { var: var.to_owned(), hint }
}

/// Levenshtein distance over bytes (variable names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_names_map_underscores_to_dots() {
        assert_eq!(property_name("SASL_PASSWORD").as_deref(), Some("sasl.password"));
        assert_eq!(property_name("SSL_CA_LOCATION").as_deref(), Some("ssl.ca.location"));
        assert_eq!(property_name("sasl_password"), None);
        assert_eq!(property_name("SASL__PASSWORD"), None);
        assert_eq!(property_name(""), None);
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("BROKERS", "BROKERZ"), 1);
        assert_eq!(edit_distance("GROUP", "GRUP"), 1);
        assert_eq!(edit_distance("", "ABC"), 3);
        assert_eq!(edit_distance("SAME", "SAME"), 0);
    }
}
