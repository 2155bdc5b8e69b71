//! The server config file (`--config twinscene.toml`): access tokens, limits, history retention
//! and the MQTT bridge. Every section is optional; an absent file means an open server.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Bearer tokens. None configured: every request may read and write everything.
    pub tokens: Vec<TokenConfig>,
    pub limits: Limits,
    pub history: HistoryRetention,
    pub live: LiveBatching,
    pub storage: StorageSettings,
    pub mqtt: Option<MqttConfig>,
    pub embedding: Embedding,
}

/// Which other sites may embed the viewer from this server (CORS). Requests carry no cookies
/// (access is by bearer token), so allowing every origin exposes nothing a token does not.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Embedding {
    /// Origins such as `"https://intranet.example"`, or `"*"` (the default) for any.
    pub allowed_origins: Vec<String>,
}

impl Default for Embedding {
    fn default() -> Self {
        Self { allowed_origins: vec!["*".into()] }
    }
}

/// How the `--db` database commits.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// "full" (default): durable against machine crashes; "normal": against process crashes.
    pub sync: crate::storage::SyncMode,
}

/// One bearer token and what it may do.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Shown in logs and metrics instead of the secret.
    pub name: String,
    pub secret: String,
    #[serde(default)]
    pub access: AccessLevel,
    /// Scene ids (file stems) the token may open; `["*"]` (the default) means every scene.
    #[serde(default = "everything")]
    pub scenes: Vec<String>,
    /// Twin ids the token may reach. With `models` also empty, every twin.
    #[serde(default)]
    pub twins: Vec<String>,
    /// Model ids whose twins the token may reach.
    #[serde(default)]
    pub models: Vec<String>,
}

fn everything() -> Vec<String> {
    vec!["*".to_owned()]
}

impl fmt::Debug for TokenConfig {
    // The secret never reaches a log line, even through a debug print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .field("access", &self.access)
            .field("scenes", &self.scenes)
            .field("twins", &self.twins)
            .field("models", &self.models)
            .finish()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLevel {
    #[default]
    Read,
    /// Read and write.
    Write,
}

/// What one request or connection may cost. Each refusal is counted in `/metrics`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The largest HTTP request body.
    pub max_body_bytes: usize,
    /// The largest WebSocket message a viewer may send.
    pub max_message_bytes: usize,
    /// The deepest nesting of arrays and objects accepted in any JSON input.
    pub max_json_depth: usize,
    /// Live viewers connected at once.
    pub max_connections: usize,
    /// Messages per second a live viewer may send (a burst of twice that is allowed).
    pub viewer_messages_per_second: f64,
    /// Ingest requests per second from one client (bearer token, or address without one).
    pub ingest_requests_per_second: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_message_bytes: 64 * 1024,
            max_json_depth: 32,
            max_connections: 1000,
            viewer_messages_per_second: 20.0,
            ingest_requests_per_second: 5000.0,
        }
    }
}

/// How much per-property history is kept.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryRetention {
    /// Points kept per twin property; older ones are pruned.
    pub max_points_per_property: u64,
    /// Points older than this are pruned, e.g. "7d".
    #[serde(with = "humantime_serde_compat")]
    pub max_age: Duration,
}

impl Default for HistoryRetention {
    fn default() -> Self {
        Self { max_points_per_property: 10_000, max_age: Duration::from_secs(7 * 24 * 3600) }
    }
}

/// How live deltas are batched.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveBatching {
    /// A batch goes out this long after its first change…
    #[serde(with = "humantime_serde_compat")]
    pub tick: Duration,
    /// …or as soon as it holds this many changes.
    pub max_changes: usize,
    /// Recent changes kept for `since_seq` catch-up and slow viewers.
    pub ring_changes: usize,
}

impl Default for LiveBatching {
    fn default() -> Self {
        Self { tick: Duration::from_millis(16), max_changes: 512, ring_changes: 65_536 }
    }
}

/// The MQTT bridge: one broker, and which topics write which twin properties.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    pub host: String,
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    #[serde(default = "default_client_id")]
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Topic patterns; `{twin}` and `{property}` stand for one topic level each.
    pub routes: Vec<MqttRoute>,
}

fn default_mqtt_port() -> u16 {
    1883
}

fn default_client_id() -> String {
    "twinscene".to_owned()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttRoute {
    /// E.g. `plant/{twin}/{property}` or `sensors/ahu1/temp`.
    pub topic: String,
    /// The twin written when the topic has no `{twin}` level.
    pub twin: Option<String>,
    /// The property written when the topic has no `{property}` level.
    pub property: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: String, source: toml::de::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl ServerConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: name.clone(), source })?;
        Self::from_toml_str(&text, &name)
    }

    pub fn from_toml_str(text: &str, path: &str) -> Result<Self, ConfigError> {
        let config: Self =
            toml::from_str(text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source })?;
        config.check().map_err(|message| ConfigError::Invalid { path: path.to_owned(), message })?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        for (index, token) in self.tokens.iter().enumerate() {
            if token.secret.len() < 8 {
                return Err(format!(
                    "tokens[{index}] ({}): the secret must be at least 8 characters",
                    token.name
                ));
            }
            let clash = self.tokens[..index].iter().find(|other| other.secret == token.secret);
            if let Some(other) = clash {
                return Err(format!("tokens {:?} and {:?} have the same secret", other.name, token.name));
            }
        }
        if let Some(mqtt) = &self.mqtt {
            for (index, route) in mqtt.routes.iter().enumerate() {
                let has = |level: &str| route.topic.split('/').any(|part| part == level);
                if !has("{twin}") && route.twin.is_none() {
                    return Err(format!(
                        "mqtt.routes[{index}]: the topic has no {{twin}} level and no twin is set"
                    ));
                }
                if !has("{property}") && route.property.is_none() {
                    return Err(format!(
                        "mqtt.routes[{index}]: the topic has no {{property}} level and no property is set"
                    ));
                }
            }
        }
        if self.live.max_changes == 0 || self.live.ring_changes == 0 {
            return Err("live.max_changes and live.ring_changes must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// Durations as humantime strings ("16ms", "7d").
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses() {
        let config = ServerConfig::from_toml_str(
            r#"
            [[tokens]]
            name = "kiosk"
            secret = "s3cret-kiosk"
            scenes = ["demo"]
            models = ["dtmi:twinscene:Room;1"]

            [[tokens]]
            name = "ingest"
            secret = "s3cret-ingest"
            access = "write"

            [limits]
            max_connections = 10

            [history]
            max_age = "1h"

            [storage]
            sync = "normal"

            [mqtt]
            host = "127.0.0.1"
            port = 1884
            routes = [{ topic = "plant/{twin}/{property}" }, { topic = "ahu/temp", twin = "AHU-1", property = "temperature" }]
            "#,
            "t.toml",
        )
        .unwrap();
        assert_eq!(config.tokens[1].access, AccessLevel::Write);
        assert_eq!(config.tokens[0].scenes, ["demo"]);
        assert_eq!(config.tokens[1].scenes, ["*"]);
        assert_eq!(config.limits.max_connections, 10);
        assert_eq!(config.limits.max_json_depth, 32);
        assert_eq!(config.history.max_age, Duration::from_secs(3600));
        assert_eq!(config.storage.sync, crate::storage::SyncMode::Normal);
        assert_eq!(config.mqtt.unwrap().routes.len(), 2);
        assert!(!format!("{:?}", config.tokens[0]).contains("s3cret"));
    }

    #[test]
    fn mistakes_are_named() {
        let error = ServerConfig::from_toml_str("[limits]\nmax_conections = 1", "t.toml").unwrap_err();
        assert!(error.to_string().contains("max_conections"), "{error}");
        let error = ServerConfig::from_toml_str("[[tokens]]\nname = \"a\"\nsecret = \"short\"", "t.toml")
            .unwrap_err();
        assert!(error.to_string().contains("at least 8"), "{error}");
        let error = ServerConfig::from_toml_str(
            "[mqtt]\nhost = \"h\"\nroutes = [{ topic = \"a/{twin}\" }]",
            "t.toml",
        )
        .unwrap_err();
        assert!(error.to_string().contains("{property}"), "{error}");
    }
}
