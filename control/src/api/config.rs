//! The `[api]` config section and the validated [`ApiConfig`] the server
//! runs with.
//!
//! ```toml
//! [api]
//! listen = "127.0.0.1:8080"        # the management address; default shown
//! tls_cert = "/etc/patronus/api.crt" # PEM chain; with tls_key, serve HTTPS
//! tls_key = "/etc/patronus/api.key"  # PEM private key (PKCS#8, PKCS#1 or SEC1)
//!
//! [[api.token]]
//! role = "admin"                     # or "read-only"
//! hash = "$argon2id$v=19$m=19456,t=2,p=1$..."   # patronus hash-token
//! ```
//!
//! Errors name the field (`api.token[1].hash`), like the rest of the
//! daemon's config. Hashes never appear in `Debug` output.

use super::auth::{Role, TokenConfig};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

fn default_listen() -> String {
    DEFAULT_LISTEN.to_string()
}

/// `[api]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    #[serde(default, rename = "token")]
    pub tokens: Vec<TokenSection>,
}

/// `[[api.token]]` as written.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSection {
    pub role: String,
    pub hash: String,
}

impl fmt::Debug for TokenSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSection")
            .field("role", &self.role)
            .field("hash", &"<redacted>")
            .finish()
    }
}

/// The certificate chain and key files for HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// What [`super::server::spawn`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub tls: Option<TlsFiles>,
    pub tokens: Vec<TokenConfig>,
    /// Pin the API thread to this CPU (the daemon passes the control core).
    pub core: Option<usize>,
}

/// A bad `[api]` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfigError {
    /// `api.listen`, `api.token[0].hash`, ...
    pub field: String,
    pub message: String,
}

impl fmt::Display for ApiConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for ApiConfigError {}

fn error(field: impl Into<String>, message: impl Into<String>) -> ApiConfigError {
    ApiConfigError {
        field: field.into(),
        message: message.into(),
    }
}

impl ApiSection {
    /// Check every field; `core` stays None (the daemon sets it).
    pub fn validate(&self) -> Result<ApiConfig, ApiConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            error(
                "api.listen",
                format!(
                    "{:?} is not an address:port such as 127.0.0.1:8080 or [::1]:8080",
                    self.listen
                ),
            )
        })?;
        let tls = match (&self.tls_cert, &self.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert_file: cert.clone(),
                key_file: key.clone(),
            }),
            (Some(_), None) => {
                return Err(error(
                    "api.tls_key",
                    "tls_cert is set: tls_key is needed too",
                ))
            }
            (None, Some(_)) => {
                return Err(error(
                    "api.tls_cert",
                    "tls_key is set: tls_cert is needed too",
                ))
            }
        };
        if self.tokens.is_empty() {
            return Err(error(
                "api.token",
                "at least one [[api.token]] is needed, or nobody can use the API; make a hash with `patronus hash-token`",
            ));
        }
        let mut tokens = Vec::with_capacity(self.tokens.len());
        for (i, t) in self.tokens.iter().enumerate() {
            let role = Role::parse(&t.role).ok_or_else(|| {
                error(
                    format!("api.token[{i}].role"),
                    "must be \"admin\" or \"read-only\"",
                )
            })?;
            tokens.push(
                TokenConfig::new(role, &t.hash)
                    .map_err(|m| error(format!("api.token[{i}].hash"), m))?,
            );
        }
        Ok(ApiConfig {
            listen,
            tls,
            tokens,
            core: None,
        })
    }

    /// Whether `listen` is a wildcard address, which would expose the API
    /// on every interface, data ports' addresses excepted (those are DPDK's).
    /// The daemon should warn: the API belongs on the management network.
    pub fn listens_everywhere(&self) -> bool {
        self.listen
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_unspecified())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::auth::hash_token_cheap;

    #[derive(Deserialize)]
    struct File {
        api: ApiSection,
    }

    fn parse(text: &str) -> Result<ApiConfig, ApiConfigError> {
        toml::from_str::<File>(text).unwrap().api.validate()
    }

    #[test]
    fn a_full_section_validates() {
        let hash = hash_token_cheap("t");
        let c = parse(&format!(
            "[api]\nlisten = \"[::1]:9443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n\
             [[api.token]]\nrole = \"read-only\"\nhash = \"{hash}\"\n"
        ))
        .unwrap();
        assert_eq!(c.listen, "[::1]:9443".parse().unwrap());
        assert_eq!(c.tls.unwrap().key_file, PathBuf::from("k.pem"));
        assert_eq!(c.tokens[0].role, Role::ReadOnly);
    }

    #[test]
    fn errors_name_the_field() {
        let hash = hash_token_cheap("t");
        let token = format!("[[api.token]]\nrole = \"admin\"\nhash = \"{hash}\"\n");
        let field = |text: &str| parse(text).unwrap_err().field;
        assert_eq!(
            field(&format!("[api]\nlisten = \"8080\"\n{token}")),
            "api.listen"
        );
        assert_eq!(
            field(&format!("[api]\ntls_cert = \"c\"\n{token}")),
            "api.tls_key"
        );
        assert_eq!(field("[api]\n"), "api.token");
        assert_eq!(
            field(&format!(
                "[api]\n{token}[[api.token]]\nrole = \"root\"\nhash = \"{hash}\"\n"
            )),
            "api.token[1].role"
        );
        assert_eq!(
            field("[api]\n[[api.token]]\nrole = \"admin\"\nhash = \"hunter2\"\n"),
            "api.token[0].hash"
        );
    }

    #[test]
    fn debug_never_shows_a_hash() {
        let hash = hash_token_cheap("t");
        let text = format!("[api]\n[[api.token]]\nrole = \"admin\"\nhash = \"{hash}\"\n");
        let section = toml::from_str::<File>(&text).unwrap().api;
        let debug = format!("{section:?} {:?}", section.validate().unwrap());
        assert!(
            !debug.contains(&hash) && !debug.contains("argon2"),
            "{debug}"
        );
    }

    #[test]
    fn the_default_listens_on_loopback_only() {
        let s: ApiSection = toml::from_str("").unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert!(!s.listens_everywhere());
    }
}
