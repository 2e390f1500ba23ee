//! Bearer-token authentication (RFC 6750) with two roles.
//!
//! - Tokens are configured as argon2 PHC strings (`$argon2id$v=19$...`),
//!   never in clear, so a leaked config file does not leak access. Create
//!   one with [`hash_token`].
//! - A request carries `Authorization: Bearer <token>` (RFC 6750 §2.1; the
//!   query-string form of §2.3 is deliberately not accepted, because URLs
//!   end up in logs and browser history).
//! - Missing or unknown token: 401 with `WWW-Authenticate: Bearer`
//!   (§3; `error="invalid_token"` when one was given). A read-only token on
//!   a method that changes state: 403 with `error="insufficient_scope"`.
//! - argon2 is slow on purpose (tens of ms, more in debug builds), so a
//!   verified token is remembered by its SHA-256 digest: only the first
//!   request with a token pays. Verification runs on the blocking pool,
//!   one at a time, so a flood of bad tokens queues up there instead of
//!   stalling the (single-threaded) API runtime; bad digests are
//!   remembered too.
//! - The token never reaches a log line or a `Debug` output: it is copied
//!   into a zeroizing buffer, the `Authorization` header is removed from
//!   the request before any handler sees it, and [`TokenConfig`]'s `Debug`
//!   redacts the hash.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

use super::error::ErrorResponse;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// GET only.
    ReadOnly,
    /// Everything, including configuration changes.
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "read-only" => Some(Role::ReadOnly),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::Admin => "admin",
        }
    }
}

/// One configured token: a role and the argon2 hash of the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenConfig {
    pub role: Role,
    /// A PHC string; checked by [`TokenConfig::new`].
    hash: String,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("role", &self.role)
            .field("hash", &"<redacted>")
            .finish()
    }
}

impl TokenConfig {
    /// Fails (with a message) unless `hash` is an argon2 PHC string.
    pub fn new(role: Role, hash: &str) -> Result<TokenConfig, String> {
        let parsed = PasswordHash::new(hash)
            .map_err(|e| format!("not a PHC hash string ({e}); make one with hash_token"))?;
        if !matches!(
            parsed.algorithm.as_str(),
            "argon2id" | "argon2i" | "argon2d"
        ) {
            return Err(format!(
                "algorithm {} is not argon2id/argon2i/argon2d",
                parsed.algorithm
            ));
        }
        if parsed.hash.is_none() {
            return Err("the PHC string has no hash part".into());
        }
        Ok(TokenConfig {
            role,
            hash: hash.to_string(),
        })
    }
}

/// The argon2id hash (PHC string, OWASP's default parameters: 19 MiB,
/// 2 passes) of a token, with a random salt, for `[[api.token]] hash`.
pub fn hash_token(token: &str) -> String {
    hash_with(token, Argon2::default())
}

fn hash_with(token: &str, argon: Argon2<'_>) -> String {
    let salt = SaltString::generate(&mut rand_core::OsRng);
    argon
        .hash_password(token.as_bytes(), &salt)
        // Only fails for out-of-range parameters or salt, which these are not.
        .expect("argon2 with default parameters and a fresh salt")
        .to_string()
}

/// A cheap hash for tests, where the default parameters cost seconds in
/// an unoptimised build. Verification reads the parameters from the hash.
#[cfg(test)]
pub(crate) fn hash_token_cheap(token: &str) -> String {
    let params = argon2::Params::new(64, 1, 1, None).expect("valid argon2 parameters");
    hash_with(
        token,
        Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params),
    )
}

/// Bounds on the verdict caches: enough for every real client, small
/// enough that a flood of random tokens cannot grow memory.
const GOOD_CACHE: usize = 64;
const BAD_CACHE: usize = 1024;

type Digest = [u8; 32];

#[derive(Default)]
struct Verdicts {
    good: HashMap<Digest, Role>,
    bad: HashMap<Digest, ()>,
}

/// Checks bearer tokens against the configured hashes.
pub struct Authenticator {
    tokens: Arc<Vec<TokenConfig>>,
    verdicts: Mutex<Verdicts>,
    /// One argon2 verification at a time.
    verifying: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

fn digest(token: &str) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn verify_all(tokens: &[TokenConfig], token: &str) -> Option<Role> {
    // Admin first, so a token configured twice gets the stronger role.
    let mut best = None;
    for t in tokens {
        let Ok(parsed) = PasswordHash::new(&t.hash) else {
            continue;
        };
        if Argon2::default()
            .verify_password(token.as_bytes(), &parsed)
            .is_ok()
        {
            if t.role == Role::Admin {
                return Some(Role::Admin);
            }
            best = Some(t.role);
        }
    }
    best
}

impl Authenticator {
    pub fn new(tokens: Vec<TokenConfig>) -> Authenticator {
        Authenticator {
            tokens: Arc::new(tokens),
            verdicts: Mutex::new(Verdicts::default()),
            verifying: tokio::sync::Semaphore::new(1),
        }
    }

    fn cached(&self, d: &Digest) -> Option<Option<Role>> {
        let v = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(role) = v.good.get(d) {
            return Some(Some(*role));
        }
        v.bad.get(d).map(|_| None)
    }

    /// The role of `token`, or None if no configured hash matches.
    pub async fn verify(&self, token: Zeroizing<String>) -> Option<Role> {
        let d = digest(&token);
        if let Some(verdict) = self.cached(&d) {
            return verdict;
        }
        // A closed semaphore never happens (we never close it); treat it as a refusal.
        let _permit = self.verifying.acquire().await.ok()?;
        if let Some(verdict) = self.cached(&d) {
            return verdict;
        }
        let tokens = self.tokens.clone();
        let role = tokio::task::spawn_blocking(move || verify_all(&tokens, &token))
            .await
            .ok()
            .flatten();
        let mut v = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        match role {
            Some(role) => {
                if v.good.len() >= GOOD_CACHE {
                    v.good.clear();
                }
                v.good.insert(d, role);
            }
            None => {
                if v.bad.len() >= BAD_CACHE {
                    v.bad.clear();
                }
                v.bad.insert(d, ());
            }
        }
        role
    }
}

/// The token of an `Authorization: Bearer` header (scheme name
/// case-insensitive, RFC 7235 §2.1).
fn bearer(value: &HeaderValue) -> Option<Zeroizing<String>> {
    let text = value.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
        .then(|| Zeroizing::new(token.to_string()))
}

fn challenge(status: StatusCode, error: Option<&str>, message: &str) -> Response {
    let value = match error {
        Some(e) => format!("Bearer realm=\"patronus\", error=\"{e}\""),
        None => "Bearer realm=\"patronus\"".to_string(),
    };
    let mut response = ErrorResponse::new(status, message).into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// Methods a read-only token may use.
fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The middleware in front of `/api/v1/*` and `/metrics`.
pub async fn require_token(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers_mut()
        .remove(header::AUTHORIZATION)
        .as_ref()
        .and_then(bearer);
    let Some(token) = token else {
        return challenge(
            StatusCode::UNAUTHORIZED,
            None,
            "a bearer token is required (Authorization: Bearer <token>)",
        );
    };
    let Some(role) = auth.verify(token).await else {
        return challenge(
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
            "the bearer token is not valid",
        );
    };
    if role == Role::ReadOnly && !is_read(request.method()) {
        return challenge(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "this token is read-only; changes need an admin token",
        );
    }
    request.extensions_mut().insert(role);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_debug_redacts_them() {
        let hash = hash_token_cheap("s3cret-token");
        let t = TokenConfig::new(Role::Admin, &hash).unwrap();
        assert_eq!(
            verify_all(std::slice::from_ref(&t), "s3cret-token"),
            Some(Role::Admin)
        );
        assert_eq!(verify_all(std::slice::from_ref(&t), "s3cret-tokeN"), None);
        let debug = format!("{t:?}");
        assert!(
            !debug.contains(&hash) && !debug.contains("argon2"),
            "{debug}"
        );
    }

    #[test]
    fn the_default_hash_is_argon2id_with_owasp_parameters() {
        let hash = hash_token("x");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
    }

    #[test]
    fn bad_hashes_are_refused_with_a_reason() {
        assert!(TokenConfig::new(Role::Admin, "plaintext").is_err());
        assert!(TokenConfig::new(Role::Admin, "$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA").is_err());
    }

    #[test]
    fn admin_wins_when_a_token_is_configured_twice() {
        let a = TokenConfig::new(Role::ReadOnly, &hash_token_cheap("t")).unwrap();
        let b = TokenConfig::new(Role::Admin, &hash_token_cheap("t")).unwrap();
        assert_eq!(verify_all(&[a, b], "t"), Some(Role::Admin));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_token() {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(
            bearer(&v("bearer abc")).as_deref().map(String::as_str),
            Some("abc")
        );
        assert_eq!(
            bearer(&v("Bearer  abc ")).as_deref().map(String::as_str),
            Some("abc")
        );
        assert!(bearer(&v("Basic abc")).is_none());
        assert!(bearer(&v("Bearer ")).is_none());
        assert!(bearer(&v("Bearer")).is_none());
    }

    #[test]
    fn verdicts_are_cached_by_digest() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let auth = Authenticator::new(vec![TokenConfig::new(
            Role::ReadOnly,
            &hash_token_cheap("ro"),
        )
        .unwrap()]);
        let ro = rt.block_on(auth.verify(Zeroizing::new("ro".into())));
        let bad = rt.block_on(auth.verify(Zeroizing::new("nope".into())));
        assert_eq!((ro, bad), (Some(Role::ReadOnly), None));
        assert_eq!(auth.cached(&digest("ro")), Some(Some(Role::ReadOnly)));
        assert_eq!(auth.cached(&digest("nope")), Some(None));
        assert_eq!(auth.cached(&digest("other")), None);
    }
}
