//! Access tokens: HS256 JWTs with an expiry, and the extractor that admits
//! only requests carrying a valid one.
//!
//! Tokens are never logged. A token names its user in `sub` (decimal id).

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chat_protocol::Id;
use chat_protocol::id::now_ms;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{ApiError, AppState};

/// Seconds of clock skew tolerated when checking `exp`.
const LEEWAY_SECS: u64 = 5;

/// Issues and verifies access tokens.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
}

/// The claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, in decimal.
    pub sub: String,
    /// Issued at, seconds since the Unix epoch (optional when verifying).
    #[serde(default)]
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
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
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> ApiError {
        ApiError::Unauthorized(match error {
            TokenError::Missing => "missing bearer token",
            TokenError::Expired => "token expired",
            TokenError::Invalid => "invalid token",
        })
    }
}

/// A verified token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub user: Id,
    /// When the token expires, in milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
}

impl Tokens {
    /// HS256 tokens signed with `secret`, valid for `ttl_secs`.
    pub fn hs256(secret: &[u8], ttl_secs: u64) -> Tokens {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
        }
    }

    /// A fresh token for `user`.
    pub fn issue(&self, user: Id) -> Result<String, ApiError> {
        let now = now_ms() / 1000;
        let claims = Claims {
            sub: user.to_string(),
            iat: now,
            exp: now + self.ttl_secs,
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
        let user = data.claims.sub.parse().map_err(|_| TokenError::Invalid)?;
        Ok(Verified {
            user,
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
        Ok(AuthUser(state.tokens.verify_bearer(&parts.headers)?.user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_name_their_user() {
        let tokens = Tokens::hs256(b"0123456789abcdef0123456789abcdef", 60);
        let token = tokens.issue(Id(42)).unwrap();
        assert_eq!(tokens.verify(&token).unwrap().user, Id(42));
    }

    #[test]
    fn forged_and_expired_tokens_are_refused() {
        let tokens = Tokens::hs256(b"secret-one-secret-one-secret-one", 60);
        let other = Tokens::hs256(b"secret-two-secret-two-secret-two", 60);
        let forged = other.issue(Id(1)).unwrap();
        assert_eq!(tokens.verify(&forged), Err(TokenError::Invalid));
        let expired = Tokens::hs256(b"secret-one-secret-one-secret-one", 0);
        let claims = Claims {
            sub: "1".into(),
            iat: 0,
            exp: now_ms() / 1000 - 3600,
        };
        let token = jsonwebtoken::encode(&Header::default(), &claims, &expired.encoding).unwrap();
        assert_eq!(tokens.verify(&token), Err(TokenError::Expired));
        assert_eq!(tokens.verify("not.a.jwt"), Err(TokenError::Invalid));
    }
}
