//! Loading TOML config files. Each binary's settings are a serde struct with `#[serde(default)]`; loading
//! rejects unknown keys and `validate()` names the key it found wrong.

use serde::de::DeserializeOwned;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid value for `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl ConfigError {
    pub fn invalid(key: &'static str, message: impl Into<String>) -> Self {
        ConfigError::Invalid { key, message: message.into() }
    }
}

/// Settings that can check themselves after loading and flag overrides.
pub trait Validate {
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Parses `text` (the contents of `path`) and validates it.
pub fn parse<T: DeserializeOwned + Validate>(path: &str, text: &str) -> Result<T, ConfigError> {
    let value: T =
        toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
    value.validate()?;
    Ok(value)
}

/// Reads, parses and validates a TOML file.
pub fn load<T: DeserializeOwned + Validate>(path: &Path) -> Result<T, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
    parse(&shown, &text)
}

/// Checks that `value` parses as a socket address; empty means "disabled" when `optional`.
pub fn check_addr(key: &'static str, value: &str, optional: bool) -> Result<(), ConfigError> {
    if optional && value.is_empty() {
        return Ok(());
    }
    value
        .parse::<std::net::SocketAddr>()
        .map(|_| ())
        .map_err(|e| ConfigError::invalid(key, format!("`{value}` is not host:port ({e})")))
}
