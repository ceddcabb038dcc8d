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

/// Reads `path` (if any) and applies `overrides` on top, each `dotted.key=value` with a TOML value
/// (`"text"`, `42`, `true`, `["a", "b"]`; anything that is not TOML counts as a string). Not validated:
/// callers apply their flags, then validate.
pub fn load_with_overrides<T: DeserializeOwned>(path: Option<&Path>, overrides: &[String]) -> Result<T, ConfigError> {
    load_layered(toml::Table::new(), path, overrides)
}

/// Like `load_with_overrides`, over `base` (what a deployment description implies): the file's keys
/// replace the base's, table by table, and the overrides come last.
pub fn load_layered<T: DeserializeOwned>(
    base: toml::Table,
    path: Option<&Path>,
    overrides: &[String],
) -> Result<T, ConfigError> {
    let (shown, text) = match path {
        Some(p) => {
            let shown = p.display().to_string();
            let text =
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
            (shown, text)
        }
        None => ("(defaults)".to_string(), String::new()),
    };
    let parse_err = |path: &str, message: String| ConfigError::Parse { path: path.into(), message };
    let file: toml::Table = toml::from_str(&text).map_err(|e| parse_err(&shown, e.to_string()))?;
    let mut table = base;
    merge(&mut table, file);
    for o in overrides {
        let (key, raw) = o.split_once('=').ok_or_else(|| parse_err("--set", format!("`{o}` is not key=value")))?;
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        set_dotted(&mut table, key.trim(), value).map_err(|m| parse_err("--set", format!("`{key}`: {m}")))?;
    }
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| parse_err(&format!("{shown} with --set"), e.to_string()))
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(value)) => merge(inner, value),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().filter(|k| !k.is_empty()).ok_or("empty key")?;
    let mut at = table;
    for part in parts {
        let entry = at.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        at = entry.as_table_mut().ok_or_else(|| format!("`{part}` is not a table"))?;
    }
    at.insert(last.to_string(), value);
    Ok(())
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

/// Checks that `value` is an address to dial: `host:port` with an IP or a DNS name (resolved at each
/// connection, so a node's name may move to another machine).
pub fn check_dial_addr(key: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let named = value.rsplit_once(':').is_some_and(|(host, port)| port.parse::<u16>().is_ok() && is_dns_name(host));
    if named {
        Ok(())
    } else {
        Err(ConfigError::invalid(key, format!("`{value}` is not host:port (an IP or a DNS name)")))
    }
}

/// Whether `s` is a DNS name: dot-separated labels of 1-63 letters, digits and inner hyphens.
pub fn is_dns_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Whether `addr` (host:port) is reachable from this machine only: a loopback IP or `localhost`. Any
/// other host name may resolve anywhere.
pub fn is_loopback(addr: &str) -> bool {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => a.ip().is_loopback(),
        Err(_) => addr.rsplit_once(':').is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Settings {
        name: String,
        port: u16,
        inner: Inner,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        on: bool,
        list: Vec<String>,
    }

    #[test]
    fn dial_addresses_may_name_a_host() {
        for ok in ["10.0.0.1:5302", "[::1]:5302", "node-1.core.example.com:5302", "core:1"] {
            assert!(check_dial_addr("k", ok).is_ok(), "{ok}");
        }
        for bad in ["node-1", ":5302", "node 1:5302", "a..b:1", "host:99999", "http://x:1"] {
            assert!(check_dial_addr("k", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_base_table_lies_under_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, "port = 2\n[inner]\non = true\n").unwrap();
        let base: toml::Table = toml::from_str("name = \"base\"\nport = 1\n[inner]\nlist = [\"x\"]\n").unwrap();
        let s: Settings = load_layered(base, Some(&path), &["inner.list=[\"y\"]".into()]).unwrap();
        assert_eq!((s.name.as_str(), s.port, s.inner.on, s.inner.list), ("base", 2, true, vec!["y".to_string()]));
    }

    #[test]
    fn overrides_apply_over_the_file_with_toml_values() {
        let dir = std::env::temp_dir().join(format!("tern-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("s.toml");
        std::fs::write(&file, "name = \"file\"\nport = 1\n[inner]\non = false\n").unwrap();
        let sets = ["port=2", "inner.on=true", "inner.list=[\"a\", \"b\"]", "name=bare words"].map(String::from);
        let s: Settings = load_with_overrides(Some(&file), &sets).unwrap();
        assert_eq!((s.name.as_str(), s.port, s.inner.on), ("bare words", 2, true));
        assert_eq!(s.inner.list, ["a", "b"]);
        let s: Settings = load_with_overrides(None, &["inner.on=true".to_string()]).unwrap();
        assert!(s.inner.on);

        let e = load_with_overrides::<Settings>(None, &["nope".to_string()]).unwrap_err();
        assert!(e.to_string().contains("not key=value"), "{e}");
        let e = load_with_overrides::<Settings>(None, &["prot=2".to_string()]).unwrap_err();
        assert!(e.to_string().contains("prot"), "{e}");
        let e = load_with_overrides::<Settings>(Some(&file), &["port.x=2".to_string()]).unwrap_err();
        assert!(e.to_string().contains("`port` is not a table"), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }
}
