//! The one error type of this crate. Every message is a single line that names
//! where the value came from (a file path or `VAR=value`), the key and the
//! expected form, so a worker can print it and stop.

/// A configuration that cannot be read, parsed or accepted.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named on the command line could not be read.
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// The file is not valid TOML.
    #[error("{origin}:{line}:{column}: TOML syntax error: {message}")]
    Syntax { origin: String, line: usize, column: usize, message: String },

    /// A key that no setting has, in a file (typos surface instead of being ignored).
    #[error("{origin}: unknown key {key} (expected {expected})")]
    UnknownKey { origin: String, key: String, expected: String },

    /// A value of the wrong type or form; `origin` is the file path or `VAR=value`.
    #[error("{origin}: {key}: {message}")]
    Invalid { origin: String, key: String, message: String },

    /// An `OMNIMETER_*` variable that matches no setting.
    #[error("{var}: unknown setting ({hint})")]
    UnknownEnv { var: String, hint: String },

    /// An `OMNIMETER_*` variable whose value does not have the form its key needs.
    #[error("{var}={value}: expected {expected}")]
    EnvValue { var: String, value: String, expected: &'static str },

    /// A setting whose value is out of range, found by [`crate::Config::validate`].
    #[error("{key} = {value}: expected {expected}")]
    Value { key: String, value: String, expected: String },

    /// Two durations in the wrong order.
    #[error("{shorter} ({shorter_value}) must be shorter than {longer} ({longer_value})")]
    Order { shorter: &'static str, shorter_value: String, longer: &'static str, longer_value: String },

    /// A setting that the worker derives from another key and must not be overridden.
    #[error("{key} is set by omnimeter: {reason}")]
    Reserved { key: String, reason: &'static str },

    /// An engine setting refused by [`omnimeter_engine::EngineConfig::validate`].
    #[error("engine.{0}")]
    Engine(#[from] omnimeter_engine::ConfigError),
}
