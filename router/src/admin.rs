//! What only admins may do: notices, bans and reading the audit log.
//!
//! Admins are the usernames named in the configuration plus the users
//! granted the stored flag (`chatd admin grant`); the former outrank the
//! latter (see `Standing`). Being an admin is checked against the store
//! on each admin call; these calls are rare, so the read is cheap where it
//! matters.

use chat_persistence::{AuditEvent, AuditFilter};
use chat_protocol::Id;
use chat_protocol::accounts::{AuditQuery, BanRequest, NoticeRequest, audit_kind};
use chat_protocol::frames::ServerFrame;
use chat_protocol::internal::AccountEvent;

use crate::sessions::{Audit, Client};
use crate::{Chat, Error, Result, bounds, content};

/// Default and largest page of `GET /admin/audit`.
const AUDIT_PAGE_DEFAULT: u32 = 50;
const AUDIT_PAGE_MAX: u32 = 100;
/// Longest ban reason kept.
const MAX_REASON_CHARS: usize = 500;

/// Where a user's admin rights come from. The configuration is the
/// operators' word and outranks a grant: an admin granted at run time
/// cannot ban one named in the configuration, nor ban or unban another
/// granted admin, so a leaked granted account can neither lock the
/// operators out nor let a banned accomplice back in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Standing {
    User,
    Granted,
    Configured,
}

/// Banning or unbanning a granted admin is for admins named in the
/// configuration: otherwise one granted admin could lift the ban the
/// operators put on another.
fn only_configured_admins(caller: Standing) -> Result<()> {
    match caller {
        Standing::Configured => Ok(()),
        _ => Err(Error::Forbidden(
            "only an admin named in the configuration can ban or unban an admin",
        )),
    }
}

impl Chat {
    /// Whether `user` is an admin.
    pub async fn is_admin(&self, user: Id) -> Result<bool> {
        Ok(self
            .standing(user)
            .await?
            .is_some_and(|standing| standing > Standing::User))
    }

    /// The standing of `user`; `None` for a user the store does not know.
    async fn standing(&self, user: Id) -> Result<Option<Standing>> {
        let Some(record) = self.store.user(user).await? else {
            return Ok(None);
        };
        let named = self
            .accounts
            .admins
            .iter()
            .any(|admin| admin.eq_ignore_ascii_case(&record.username));
        Ok(Some(if named {
            Standing::Configured
        } else if self.store.account_flags(user).await?.admin {
            Standing::Granted
        } else {
            Standing::User
        }))
    }

    async fn require_admin(&self, user: Id) -> Result<Standing> {
        match self.standing(user).await? {
            None | Some(Standing::User) => Err(Error::Forbidden("admins only")),
            Some(admin) => Ok(admin),
        }
    }

    /// An admin's notice to every connection, or to one room's members.
    pub async fn notice(&self, admin: Id, request: NoticeRequest, client: &Client) -> Result<()> {
        self.require_admin(admin).await?;
        let content = content::message_content(&request.content)?;
        match request.room_id {
            Some(room) => {
                if self.store.room(&room).await?.is_none() {
                    return Err(Error::NotFound("room"));
                }
                let frame = ServerFrame::Notice {
                    content,
                    room_id: Some(room),
                };
                self.publish_to_room(&room, frame, None).await;
            }
            None => {
                self.publish_accounts(&AccountEvent::Notice { content })
                    .await;
            }
        }
        self.audit(
            audit_kind::NOTICE,
            Audit {
                actor: Some(admin),
                room: request.room_id,
                client: Some(client),
                ..Audit::default()
            },
        );
        Ok(())
    }

    /// Bans `target`: refused at login from now on, every session revoked.
    pub async fn ban(
        &self,
        admin: Id,
        target: Id,
        request: BanRequest,
        client: &Client,
    ) -> Result<()> {
        let standing = self.require_admin(admin).await?;
        if target == admin {
            return Err(Error::bad_request("an admin cannot ban themselves"));
        }
        match self
            .standing(target)
            .await?
            .ok_or(Error::NotFound("user"))?
        {
            Standing::User => {}
            Standing::Granted => only_configured_admins(standing)?,
            Standing::Configured => {
                return Err(Error::Forbidden(
                    "an admin named in the configuration cannot be banned",
                ));
            }
        }
        self.store.set_banned(target, true).await?;
        let revoked = self
            .store
            .revoke_sessions(target, None, self.now_ms())
            .await?;
        self.announce_revoked(revoked).await;
        let reason = request
            .reason
            .map(|reason| crate::audit::client_text(&reason, MAX_REASON_CHARS))
            .filter(|reason| !reason.is_empty());
        self.audit(
            audit_kind::BAN,
            Audit {
                actor: Some(admin),
                target: Some(target),
                client: Some(client),
                detail: reason,
                ..Audit::default()
            },
        );
        Ok(())
    }

    /// Lifts a ban.
    pub async fn unban(&self, admin: Id, target: Id, client: &Client) -> Result<()> {
        let standing = self.require_admin(admin).await?;
        if self
            .standing(target)
            .await?
            .ok_or(Error::NotFound("user"))?
            == Standing::Granted
        {
            only_configured_admins(standing)?;
        }
        self.store.set_banned(target, false).await?;
        self.audit(
            audit_kind::UNBAN,
            Audit {
                actor: Some(admin),
                target: Some(target),
                client: Some(client),
                ..Audit::default()
            },
        );
        Ok(())
    }

    /// A page of the audit log, newest first, and whether there is more.
    pub async fn audit_log(&self, admin: Id, query: AuditQuery) -> Result<(Vec<AuditEvent>, bool)> {
        self.require_admin(admin).await?;
        let limit = query.limit.unwrap_or(AUDIT_PAGE_DEFAULT);
        if !(1..=AUDIT_PAGE_MAX).contains(&limit) {
            return Err(Error::bad_request(format!(
                "limit must be 1 to {AUDIT_PAGE_MAX}"
            )));
        }
        if let Some(kind) = &query.kind
            && !audit_kind::ALL.contains(&kind.as_str())
        {
            return Err(Error::bad_request(format!("unknown audit kind {kind:?}")));
        }
        let retention_ms =
            u64::try_from(self.accounts.audit_retention.as_millis()).unwrap_or(u64::MAX);
        let filter = AuditFilter {
            before: bounds::before(query.before),
            limit,
            kind: query.kind,
            user: query.user_id,
            since: self.now_ms().saturating_sub(retention_ms),
        };
        Ok(self.store.audit_events(filter).await?)
    }
}
