//! Bearer tokens from the server config and what each may reach: scenes, twins by id or model,
//! read or write. With no token configured the server is open and every request gets `Grant::open`.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use twinscene_core::twin::Twin;

use crate::api_error::ApiError;
use crate::server_config::{AccessLevel, TokenConfig};
use crate::state::AppState;

/// What one request or live connection may do.
#[derive(Clone, Debug)]
pub struct Grant {
    /// The token's name, for logs; never the secret.
    pub name: Option<String>,
    write: bool,
    all_scenes: bool,
    scenes: HashSet<String>,
    all_twins: bool,
    twins: HashSet<String>,
    models: HashSet<String>,
}

impl Grant {
    /// Everything: a server without tokens.
    pub fn open() -> Self {
        Self {
            name: None,
            write: true,
            all_scenes: true,
            scenes: HashSet::new(),
            all_twins: true,
            twins: HashSet::new(),
            models: HashSet::new(),
        }
    }

    fn from_token(token: &TokenConfig) -> Self {
        Self {
            name: Some(token.name.clone()),
            write: token.access == AccessLevel::Write,
            all_scenes: token.scenes.iter().any(|scene| scene == "*"),
            scenes: token.scenes.iter().cloned().collect(),
            all_twins: token.twins.is_empty() && token.models.is_empty(),
            twins: token.twins.iter().cloned().collect(),
            models: token.models.iter().cloned().collect(),
        }
    }

    pub fn may_open_scene(&self, scene: &str) -> bool {
        self.all_scenes || self.scenes.contains(scene)
    }

    /// True when no twin is hidden from this grant, so shared, pre-serialized deltas fit it.
    pub fn reads_every_twin(&self) -> bool {
        self.all_twins
    }

    pub fn may_read(&self, twin: &Twin) -> bool {
        self.may_read_parts(&twin.id, &twin.model)
    }

    /// `may_read` for a twin known by its id and model.
    pub fn may_read_parts(&self, id: &str, model: &str) -> bool {
        self.all_twins || self.twins.contains(id) || self.models.contains(model)
    }

    pub fn may_write(&self, twin: &Twin) -> bool {
        self.write && self.may_read(twin)
    }

    /// Writes that are not about one twin's scope (models, relationships between readable twins).
    pub fn may_write_anything(&self) -> bool {
        self.write
    }
}

/// The configured tokens.
#[derive(Debug, Default)]
pub struct Tokens {
    tokens: Vec<(TokenConfig, Arc<Grant>)>,
}

impl Tokens {
    pub fn new(tokens: &[TokenConfig]) -> Self {
        Self {
            tokens: tokens.iter().map(|token| (token.clone(), Arc::new(Grant::from_token(token)))).collect(),
        }
    }

    /// The grant for a presented secret (`None`: no token presented).
    pub fn grant(&self, secret: Option<&str>) -> Result<Arc<Grant>, ApiError> {
        if self.tokens.is_empty() {
            return Ok(Arc::new(Grant::open()));
        }
        let secret =
            secret.ok_or_else(|| ApiError::Unauthorized("this server requires a bearer token".into()))?;
        // Every secret is compared, in time independent of where they differ.
        let mut found = None;
        for (token, grant) in &self.tokens {
            if constant_time_eq(token.secret.as_bytes(), secret.as_bytes()) {
                found = Some(grant.clone());
            }
        }
        found.ok_or_else(|| ApiError::Unauthorized("the bearer token is not known to this server".into()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |difference, (x, y)| difference | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for Arc<Grant> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| text.strip_prefix("Bearer ").or_else(|| text.strip_prefix("bearer ")))
                .map(str::trim)
        });
        let secret = match header {
            None => None,
            Some(Some(secret)) => Some(secret),
            Some(None) => {
                crate::metrics::refused("unauthorized");
                return Err(ApiError::Unauthorized(
                    "the Authorization header is not `Bearer <token>`".into(),
                ));
            }
        };
        state.tokens().grant(secret).inspect_err(|_| crate::metrics::refused("unauthorized"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(secret: &str, access: AccessLevel, twins: &[&str], models: &[&str]) -> TokenConfig {
        TokenConfig {
            name: format!("{secret}-name"),
            secret: secret.to_owned(),
            access,
            scenes: vec!["demo".to_owned()],
            twins: twins.iter().map(|s| s.to_string()).collect(),
            models: models.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn scopes_by_id_model_scene_and_access() {
        let tokens = Tokens::new(&[
            token("reader-secret", AccessLevel::Read, &["a"], &["dtmi:x;1"]),
            token("writer-secret", AccessLevel::Write, &[], &[]),
        ]);
        let reader = tokens.grant(Some("reader-secret")).unwrap();
        let (a, b, c) = (Twin::new("a", "dtmi:y;1"), Twin::new("b", "dtmi:x;1"), Twin::new("c", "dtmi:y;1"));
        assert!(reader.may_read(&a) && reader.may_read(&b) && !reader.may_read(&c));
        assert!(!reader.may_write(&a));
        assert!(reader.may_open_scene("demo") && !reader.may_open_scene("other"));
        let writer = tokens.grant(Some("writer-secret")).unwrap();
        assert!(writer.may_write(&c) && writer.reads_every_twin());
        assert!(tokens.grant(Some("nope")).is_err());
        assert!(tokens.grant(None).is_err());
        assert!(Tokens::default().grant(None).unwrap().may_write(&c));
    }
}
