//! Serde support for [`DurationMs`] written as `500ms`, `5s`, `30m`, `24h` or `7d`,
//! for `#[serde(with = "omnimeter_config::duration")]` on a `DurationMs` field.

use std::fmt;

use omnimeter_engine::DurationMs;
use serde::{Deserializer, Serializer, de};

/// Writes the duration in its largest exact unit (`30m`, `1500ms`).
pub fn serialize<S: Serializer>(d: &DurationMs, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(d)
}

/// Reads a duration string; anything else is an error that shows the expected form.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DurationMs, D::Error> {
    d.deserialize_str(DurationVisitor)
}

struct DurationVisitor;

impl de::Visitor<'_> for DurationVisitor {
    type Value = DurationMs;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string, like \"500ms\", \"5s\", \"30m\", \"24h\" or \"7d\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationMs, E> {
        v.parse().map_err(E::custom)
    }
}
