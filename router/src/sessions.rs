//! Sessions and the account calls of v1.1: signing up and in (each opens a
//! session that the token names), logout, password and profile changes.
//!
//! Revoking sessions is durable in the store first, then announced on the
//! bus ([`ACCOUNTS_CHANNEL`]) so that every gateway refuses the tokens and
//! closes the connections at once; a gateway that missed the announcement
//! finds the revocation at its next reload from the store (see
//! `chat_gateway::revocations`), which bounds how stale it can be.

use std::time::Duration;

use chat_persistence::{AuditEvent, Revocation, SessionRecord, UserRecord};
use chat_protocol::accounts::{ChangePasswordRequest, UpdateProfileRequest, audit_kind};
use chat_protocol::internal::{self, ACCOUNTS_CHANNEL, AccountEvent};
use chat_protocol::rest::{LoginRequest, RegisterRequest};
use chat_protocol::{Id, RoomId, User};

use crate::{Chat, Error, Result, content};

/// Longest username kept in the detail of a failed login.
const MAX_AUDITED_USERNAME: usize = 64;

/// Account rules that come from the configuration.
#[derive(Clone, Debug)]
pub struct AccountSettings {
    /// Usernames of the configured admins, lower-cased.
    pub admins: Vec<String>,
    /// How long a session (and its tokens) lives.
    pub session_ttl: Duration,
    /// How far back the audit log is kept, and read.
    pub audit_retention: Duration,
}

impl Default for AccountSettings {
    fn default() -> AccountSettings {
        AccountSettings {
            admins: Vec::new(),
            session_ttl: Duration::from_secs(24 * 3600),
            audit_retention: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// Who is asking, for the audit log: the client's address as the gateway
/// established it (the socket peer, or a trusted proxy's `X-Forwarded-For`).
#[derive(Clone, Debug, Default)]
pub struct Client {
    pub ip: Option<String>,
}

/// What an audit event is about, besides its kind.
#[derive(Clone, Debug, Default)]
pub struct Audit<'a> {
    pub actor: Option<Id>,
    pub target: Option<Id>,
    pub room: Option<RoomId>,
    pub client: Option<&'a Client>,
    pub detail: Option<String>,
}

impl Chat {
    /// Records an audit event without waiting (see [`crate::audit`]).
    pub fn audit(&self, kind: &str, audit: Audit<'_>) {
        // No id, no event: the process lost its worker id and is stopping;
        // an event under a repeated id would be dropped by the store anyway.
        let Ok(id) = self.mint_id() else {
            tracing::error!(kind, "audit event not recorded: minting stopped");
            return;
        };
        self.audit.record(AuditEvent {
            id,
            at: id.unix_ms(),
            kind: kind.to_owned(),
            actor_id: audit.actor,
            target_id: audit.target,
            room_id: audit.room,
            ip: audit.client.and_then(|client| client.ip.clone()),
            detail: audit.detail,
        });
    }

    /// Registers an account and opens its first session.
    pub async fn sign_up(
        &self,
        request: RegisterRequest,
        client: &Client,
    ) -> Result<(UserRecord, SessionRecord)> {
        self.check_login_rate(client, &request.username).await?;
        let user = self.register(request).await?;
        let session = self.open_session(user.id).await?;
        self.audit(
            audit_kind::REGISTER,
            Audit {
                actor: Some(user.id),
                client: Some(client),
                ..Audit::default()
            },
        );
        Ok((user, session))
    }

    /// Logs in and opens a session. Banned users get `forbidden`, and only
    /// once their password was right, so a ban tells a stranger nothing.
    pub async fn sign_in(
        &self,
        request: LoginRequest,
        client: &Client,
    ) -> Result<(UserRecord, SessionRecord)> {
        let username = crate::audit::client_text(&request.username, MAX_AUDITED_USERNAME);
        self.check_login_rate(client, &request.username).await?;
        let (user, verified_hash) = match self.login(request).await {
            Ok(found) => found,
            Err(Error::BadCredentials) => {
                self.audit(
                    audit_kind::LOGIN_FAILED,
                    Audit {
                        client: Some(client),
                        detail: Some(format!("username {username}")),
                        ..Audit::default()
                    },
                );
                return Err(Error::BadCredentials);
            }
            Err(error) => return Err(error),
        };
        if self.store.account_flags(user.id).await?.banned {
            self.audit(
                audit_kind::LOGIN_FAILED,
                Audit {
                    target: Some(user.id),
                    client: Some(client),
                    detail: Some("banned".into()),
                    ..Audit::default()
                },
            );
            return Err(Error::Forbidden("this account is banned"));
        }
        let session = self.open_session(user.id).await?;
        // A ban or a password change that landed while this login was
        // checking revoked every session but this one, made after: look
        // again now that it exists, and take it back if either did.
        let banned = self.store.account_flags(user.id).await?.banned;
        let changed = self
            .store
            .credentials(&user.username)
            .await?
            .is_none_or(|now| now.password_hash != verified_hash);
        if banned || changed {
            self.store
                .revoke_session(user.id, session.id, self.now_ms())
                .await?;
            return Err(if banned {
                Error::Forbidden("this account is banned")
            } else {
                Error::BadCredentials
            });
        }
        self.audit(
            audit_kind::LOGIN,
            Audit {
                actor: Some(user.id),
                client: Some(client),
                ..Audit::default()
            },
        );
        Ok((user, session))
    }

    async fn open_session(&self, user: Id) -> Result<SessionRecord> {
        let id = self.mint_id()?;
        let created_at = id.unix_ms();
        let ttl_ms = u64::try_from(self.accounts.session_ttl.as_millis()).unwrap_or(u64::MAX);
        let session = SessionRecord {
            id,
            user,
            created_at,
            expires_at: created_at.saturating_add(ttl_ms),
        };
        self.store.create_session(session).await?;
        Ok(session)
    }

    /// Ends `session` of `user`, or every session of theirs with `all`.
    pub async fn logout(&self, user: Id, session: Id, all: bool, client: &Client) -> Result<()> {
        let now = self.now_ms();
        let revoked = if all {
            self.store.revoke_sessions(user, None, now).await?
        } else {
            self.store
                .revoke_session(user, session, now)
                .await?
                .into_iter()
                .collect()
        };
        self.announce_revoked(revoked).await;
        self.audit(
            audit_kind::LOGOUT,
            Audit {
                actor: Some(user),
                client: Some(client),
                detail: all.then(|| "all sessions".into()),
                ..Audit::default()
            },
        );
        Ok(())
    }

    /// Changes the password after checking the current one (`unauthorized`
    /// when wrong) and revokes every other session of the user. The check
    /// counts against the login limits of the user's name and the client's
    /// address: a stolen token must not guess the password faster than a
    /// login could, nor keep the hashing threads busy for everyone.
    pub async fn change_password(
        &self,
        user: Id,
        session: Id,
        request: ChangePasswordRequest,
        client: &Client,
    ) -> Result<()> {
        crate::accounts::check_password(&request.new_password)?;
        let record = self
            .store
            .user(user)
            .await?
            .ok_or(Error::NotFound("user"))?;
        self.check_login_rate(client, &record.username).await?;
        let credentials = self.store.credentials(&record.username).await?;
        let phc = credentials.as_ref().map(|c| c.password_hash.as_str());
        if !self
            .passwords()
            .verify(&request.current_password, phc)
            .await?
        {
            return Err(Error::BadCredentials);
        }
        let hash = self.passwords().hash(&request.new_password).await?;
        if !self.store.set_password_hash(user, &hash).await? {
            return Err(Error::NotFound("user"));
        }
        let revoked = self
            .store
            .revoke_sessions(user, Some(session), self.now_ms())
            .await?;
        self.announce_revoked(revoked).await;
        self.audit(
            audit_kind::PASSWORD_CHANGED,
            Audit {
                actor: Some(user),
                client: Some(client),
                ..Audit::default()
            },
        );
        Ok(())
    }

    /// Changes the caller's display name.
    pub async fn update_profile(&self, user: Id, request: UpdateProfileRequest) -> Result<User> {
        let display_name = content::name("display_name", &request.display_name)?;
        let updated = self
            .store
            .set_display_name(user, &display_name)
            .await?
            .ok_or(Error::NotFound("user"))?;
        Ok(updated.to_user())
    }

    /// Tells every gateway to refuse these sessions from now on. The store
    /// holds them already: a gateway that misses this finds them at its
    /// next reload.
    pub(crate) async fn announce_revoked(&self, revoked: Vec<Revocation>) {
        if revoked.is_empty() {
            return;
        }
        self.publish_accounts(&AccountEvent::Revoked(revoked)).await;
    }

    pub(crate) async fn publish_accounts(&self, event: &AccountEvent) {
        match internal::encode(event) {
            Ok(bytes) => {
                if let Err(error) = self
                    .bus
                    .pubsub
                    .publish(ACCOUNTS_CHANNEL, bytes.into())
                    .await
                {
                    tracing::warn!(%error, "account event not published");
                }
            }
            Err(error) => tracing::error!(%error, "account event not encodable"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::RateLimits;

    /// A login that checked the old password while the password changed
    /// (the change revoked every session there was) opens no session:
    /// it is answered as a wrong password.
    #[tokio::test]
    async fn a_login_racing_a_password_change_opens_no_session() {
        let test = crate::testing::chat_with(RateLimits::default());
        let chat = test.chat.clone();
        let register = RegisterRequest {
            username: "dave".into(),
            password: "password123".into(),
            display_name: None,
        };
        let dave = chat.register(register).await.unwrap();
        let changed = chat.passwords().hash("another-password").await.unwrap();

        let login = tokio::spawn(async move {
            let request = LoginRequest {
                username: "dave".into(),
                password: "password123".into(),
            };
            chat.sign_in(request, &Client { ip: None }).await
        });
        // The login has read the old hash and is checking it (an argon2
        // run takes far longer) when the password changes; had it read the
        // new one, it would be refused all the same.
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            test.store
                .set_password_hash(dave.id, &changed)
                .await
                .unwrap()
        );
        let answer = login.await.unwrap();
        assert!(matches!(answer, Err(Error::BadCredentials)), "{answer:?}");
    }
}
