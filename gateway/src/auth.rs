//! Access tokens: HS256 JWTs with an expiry, and the extractors that admit
//! only requests carrying a valid one.
//!
//! Tokens are never logged. A token names its user in `sub` (decimal id)
//! and its session in `sid`, and must say when it was issued (`iat`): one
//! issued in the future (beyond the clock-skew leeway) is refused, since no
//! gateway of ours mints such a token; a token of a revoked session is refused
//! (checked in memory, see [`crate::revocations`]). Tokens without a
//! session (issued before sessions existed) are refused too, and so are
//! tokens of a user the store does not know ([`crate::known_users`]).

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use std::sync::Arc;

use chat_persistence::SessionRecord;
use chat_protocol::Id;
use chat_protocol::id::now_ms;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::revocations::Revocations;
use crate::{ApiError, AppState};

/// Seconds of clock skew tolerated when checking `exp` and `iat`.
const LEEWAY_SECS: u64 = 5;

/// Issues and verifies access tokens.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    revocations: Arc<Revocations>,
    /// `iss` and `aud` of the tokens issued here, when configured.
    issuer: Option<String>,
    audience: Option<String>,
}

/// The claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, in decimal.
    pub sub: String,
    /// Issued at, seconds since the Unix epoch; required when verifying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
    /// The session, in decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The issuer, when one is configured (checked by the decoder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The audience, when one is configured (checked by the decoder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("missing bearer token")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error("invalid token")]
    Invalid,
    #[error("session revoked")]
    Revoked,
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> ApiError {
        ApiError::Unauthorized(match error {
            TokenError::Missing => "missing bearer token",
            TokenError::Expired => "token expired",
            TokenError::Invalid => "invalid token",
            TokenError::Revoked => "session revoked",
        })
    }
}

/// A verified token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub user: Id,
    pub session: Id,
    /// When the token expires, in milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
}

impl Tokens {
    /// HS256 tokens signed with `secret`, refusing the sessions in
    /// `revocations`. A token lives as long as its session.
    pub fn hs256(secret: &[u8], revocations: Arc<Revocations>) -> Tokens {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            revocations,
            issuer: None,
            audience: None,
        }
    }

    /// Issues tokens naming `issuer` and `audience` (each when set) and
    /// accepts only tokens that name the same ones.
    pub fn with_issuer_and_audience(
        mut self,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Tokens {
        if let Some(issuer) = issuer {
            self.validation.set_issuer(&[issuer]);
        }
        if let Some(audience) = audience {
            self.validation.set_audience(&[audience]);
        }
        let mut required = vec!["exp", "sub"];
        required.extend(issuer.map(|_| "iss"));
        required.extend(audience.map(|_| "aud"));
        self.validation.set_required_spec_claims(&required);
        self.issuer = issuer.map(str::to_owned);
        self.audience = audience.map(str::to_owned);
        self
    }

    /// The revoked sessions this node refuses.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    /// A token for `session`, expiring with it.
    pub fn issue(&self, session: &SessionRecord) -> Result<String, ApiError> {
        let claims = Claims {
            sub: session.user.to_string(),
            iat: Some(session.created_at / 1000),
            exp: session.expires_at / 1000,
            sid: Some(session.id.to_string()),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("token signing failed: {e}")))
    }

    /// Verifies a token's signature and expiry.
    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        let issued_at = data.claims.iat.ok_or(TokenError::Invalid)?;
        if issued_at > (now_ms() / 1000).saturating_add(LEEWAY_SECS) {
            return Err(TokenError::Invalid);
        }
        let user = data.claims.sub.parse().map_err(|_| TokenError::Invalid)?;
        let session: Id = data
            .claims
            .sid
            .as_deref()
            .ok_or(TokenError::Invalid)?
            .parse()
            .map_err(|_| TokenError::Invalid)?;
        if self.revocations.is_revoked(session) {
            return Err(TokenError::Revoked);
        }
        Ok(Verified {
            user,
            session,
            expires_at_ms: data.claims.exp.saturating_mul(1000),
        })
    }

    /// Verifies the bearer token of a request's `Authorization` header.
    pub fn verify_bearer(&self, headers: &HeaderMap) -> Result<Verified, TokenError> {
        let header = headers
            .get(AUTHORIZATION)
            .ok_or(TokenError::Missing)?
            .to_str()
            .map_err(|_| TokenError::Invalid)?;
        let (scheme, token) = header.split_once(' ').ok_or(TokenError::Invalid)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::Invalid);
        }
        self.verify(token.trim())
    }
}

/// The authenticated caller of a REST call.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser(pub Id);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = state.tokens.verify_bearer(&parts.headers)?.user;
        state.known_users.check(&**state.chat.store(), user).await?;
        Ok(AuthUser(user))
    }
}

/// The authenticated caller of a REST call and the session of their token.
#[derive(Debug, Clone, Copy)]
pub struct AuthSession {
    pub user: Id,
    pub session: Id,
}

impl FromRequestParts<AppState> for AuthSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let verified = state.tokens.verify_bearer(&parts.headers)?;
        state
            .known_users
            .check(&**state.chat.store(), verified.user)
            .await?;
        Ok(AuthSession {
            user: verified.user,
            session: verified.session,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_persistence::Revocation;

    fn session(user: u64, id: u64, lifetime_ms: u64) -> SessionRecord {
        let now = now_ms();
        SessionRecord {
            id: Id(id),
            user: Id(user),
            created_at: now,
            expires_at: now + lifetime_ms,
        }
    }

    fn tokens(secret: &[u8]) -> Tokens {
        Tokens::hs256(secret, Arc::new(Revocations::new()))
    }

    #[test]
    fn issued_tokens_verify_and_name_their_user_and_session() {
        let tokens = tokens(b"0123456789abcdef0123456789abcdef");
        let token = tokens.issue(&session(42, 7, 60_000)).unwrap();
        let verified = tokens.verify(&token).unwrap();
        assert_eq!((verified.user, verified.session), (Id(42), Id(7)));
    }

    #[test]
    fn revoked_sessions_are_refused() {
        let tokens = tokens(b"0123456789abcdef0123456789abcdef");
        let token = tokens.issue(&session(42, 7, 60_000)).unwrap();
        let other = tokens.issue(&session(42, 8, 60_000)).unwrap();
        tokens.revocations().add(&[Revocation {
            session: Id(7),
            user: Id(42),
            expires_at: now_ms() + 60_000,
        }]);
        assert_eq!(tokens.verify(&token), Err(TokenError::Revoked));
        assert!(tokens.verify(&other).is_ok(), "other sessions stay valid");
    }

    #[test]
    fn forged_expired_and_sessionless_tokens_are_refused() {
        let tokens = tokens(b"secret-one-secret-one-secret-one");
        let other = self::tokens(b"secret-two-secret-two-secret-two");
        let forged = other.issue(&session(1, 1, 60_000)).unwrap();
        assert_eq!(tokens.verify(&forged), Err(TokenError::Invalid));
        let sign = |claims: &Claims| {
            jsonwebtoken::encode(&Header::default(), claims, &tokens.encoding).unwrap()
        };
        let expired = sign(&Claims {
            sub: "1".into(),
            iat: Some(0),
            exp: now_ms() / 1000 - 3600,
            sid: Some("1".into()),
            iss: None,
            aud: None,
        });
        assert_eq!(tokens.verify(&expired), Err(TokenError::Expired));
        let sessionless = sign(&Claims {
            sub: "1".into(),
            iat: Some(0),
            exp: now_ms() / 1000 + 3600,
            sid: None,
            iss: None,
            aud: None,
        });
        assert_eq!(tokens.verify(&sessionless), Err(TokenError::Invalid));
        let now = now_ms() / 1000;
        let issued_at = |iat: Option<u64>| {
            sign(&Claims {
                sub: "1".into(),
                iat,
                exp: now + 3600,
                sid: Some("1".into()),
                iss: None,
                aud: None,
            })
        };
        assert_eq!(tokens.verify(&issued_at(None)), Err(TokenError::Invalid));
        assert_eq!(
            tokens.verify(&issued_at(Some(now + 600))),
            Err(TokenError::Invalid),
            "issued in the future"
        );
        assert!(
            tokens.verify(&issued_at(Some(now + 2))).is_ok(),
            "within the leeway"
        );
        assert!(tokens.verify(&issued_at(Some(now - 60))).is_ok());
        assert_eq!(tokens.verify("not.a.jwt"), Err(TokenError::Invalid));
    }

    #[test]
    fn a_configured_issuer_and_audience_are_issued_and_required() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let checked = tokens(secret).with_issuer_and_audience(Some("chat"), Some("web"));
        let token = checked.issue(&session(42, 7, 60_000)).unwrap();
        assert!(checked.verify(&token).is_ok());
        let plain = tokens(secret).issue(&session(42, 7, 60_000)).unwrap();
        assert_eq!(checked.verify(&plain), Err(TokenError::Invalid));
        let elsewhere = tokens(secret)
            .with_issuer_and_audience(Some("other"), Some("web"))
            .issue(&session(42, 7, 60_000))
            .unwrap();
        assert_eq!(checked.verify(&elsewhere), Err(TokenError::Invalid));
        let other_audience = tokens(secret)
            .with_issuer_and_audience(Some("chat"), Some("mobile"))
            .issue(&session(42, 7, 60_000))
            .unwrap();
        assert_eq!(checked.verify(&other_audience), Err(TokenError::Invalid));
    }
}
