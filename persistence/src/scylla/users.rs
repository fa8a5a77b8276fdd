//! Users: registration with case-insensitive unique names, lookups, prefix
//! search and presence.
//!
//! Registration first claims the lower-cased name in `usernames` with a
//! lightweight transaction: that row is the uniqueness rule, so of any
//! number of concurrent registrations of one name (in any case) exactly one
//! wins. Only the winner writes the user row and its search rows, together
//! in a small logged batch (all or none, eventually). If that batch fails for
//! sure, the claim is given back.

use chat_protocol::Id;
use scylla::statement::batch::{Batch, BatchType};

use super::ScyllaStore;
use super::lwt::Lwt;
use super::rows::{
    PREFIX_CHARS, UserRow, id_from_cql, id_to_cql, prefix_end, prefix_partition, user_values,
    username_key,
};
use crate::records::{Credentials, NewUser, UserRecord};
use crate::{Result, StoreError};

/// The `username_prefixes` partition listing `prefix`: its first character
/// (the empty prefix has none and is never listed).
fn prefix_directory(prefix: &str) -> &str {
    match prefix.char_indices().nth(1) {
        Some((end, _)) => &prefix[..end],
        None => prefix,
    }
}

/// Every directory partition, in order: the first characters a username
/// key can have (lower-cased username bytes).
fn all_directories() -> Vec<String> {
    let mut firsts: Vec<u8> = (0..=127u8)
        .filter(|byte| chat_protocol::limits::is_username_byte(*byte))
        .map(|byte| byte.to_ascii_lowercase())
        .collect();
    firsts.sort_unstable();
    firsts.dedup();
    firsts
        .into_iter()
        .map(|byte| char::from(byte).to_string())
        .collect()
}

/// How often a claim whose outcome was unknown, and that turned out not to
/// have been applied, is tried again.
const MAX_CLAIM_ATTEMPTS: u32 = 3;

impl ScyllaStore {
    pub(super) async fn user_row(&self, id: Id) -> Result<Option<UserRow>> {
        self.first_row(&self.statements.select_user, (id_to_cql(id),))
            .await
    }

    pub(super) async fn create_user_impl(&self, user: NewUser) -> Result<UserRecord> {
        let key = username_key(&user.username);
        let id = id_to_cql(user.id);
        let claimed = self.claim_username(&key, id).await?;
        if !claimed {
            return Err(StoreError::Conflict(format!(
                "username {:?} is taken",
                user.username
            )));
        }

        // The user row and its search row, plus the prefix's directory row
        // unless this process has written it already (it never changes):
        // registrations do not all rewrite one directory partition.
        let partition = prefix_partition(&key);
        let listed = self.listed_prefixes.contains(&partition.to_owned());
        let mut batch = self.logged_batch();
        batch.append_statement(self.statements.insert_user.clone());
        batch.append_statement(self.statements.insert_user_prefix.clone());
        let user_rows = (user_values(&user), (partition, key.as_str(), id));
        let outcome = if listed {
            self.batch(&batch, user_rows).await
        } else {
            batch.append_statement(self.statements.insert_prefix_directory.clone());
            let directory_row = (prefix_directory(partition), partition);
            self.batch(&batch, (user_rows.0, user_rows.1, directory_row))
                .await
        };
        if let Err(error) = outcome {
            if super::errors::is_uncertain(&error) {
                // The batch may yet be applied from the batch log: keep the
                // name, so that it cannot end up with two users.
                return Err(error.into());
            }
            if let Err(release) = self
                .lwt(&self.statements.release_username, (&key, id))
                .await
            {
                tracing::warn!(%release, username = %key, "cannot release a username after a failed registration");
            }
            return Err(error.into());
        }
        if !listed {
            self.listed_prefixes.insert(partition.to_owned());
        }
        Ok(UserRecord {
            id: user.id,
            username: user.username,
            display_name: user.display_name,
            created_at: user.created_at,
            last_seen_at: None,
        })
    }

    /// Claims `key` for user `id`; answers whether `id` holds it now.
    async fn claim_username(&self, key: &str, id: i64) -> Result<bool> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.lwt(&self.statements.claim_username, (key, id)).await? {
                Lwt::Applied => return Ok(true),
                // Our own earlier attempt (a retry) may hold it: carry on then.
                Lwt::NotApplied(answer) => return Ok(answer.bigint("user_id") == Some(id)),
                Lwt::Uncertain(error) => {
                    // Paxos timed out (contention, slow replicas): a serial
                    // read settles who holds the name, if anyone does.
                    let holder: Option<(Option<i64>,)> = self
                        .first_row(&self.statements.select_username_serial, (key,))
                        .await?;
                    match holder {
                        Some((Some(holder),)) => return Ok(holder == id),
                        // Nobody: nothing was written; try again, a few times.
                        _ if attempts < MAX_CLAIM_ATTEMPTS => continue,
                        _ => return Err(error.into()),
                    }
                }
            }
        }
    }

    /// A logged batch (all of it is applied, eventually, or none) at the
    /// write consistency, idempotent: it writes fixed values to fixed keys.
    /// Used once: a user row with its search rows (two or three
    /// partitions, at most three statements), so that a user is never
    /// unfindable by prefix.
    pub(super) fn logged_batch(&self) -> Batch {
        let mut batch = Batch::new(BatchType::Logged);
        batch.set_consistency(self.options.write_consistency);
        batch.set_is_idempotent(true);
        batch
    }

    pub(super) async fn users_impl(&self, ids: &[Id]) -> Result<Vec<UserRecord>> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let users = self
            .concurrently(ids, |id| async move { self.user_row(id).await })
            .await?;
        Ok(users
            .into_iter()
            .flatten()
            .filter_map(UserRow::into_user)
            .collect())
    }

    pub(super) async fn credentials_impl(&self, username: &str) -> Result<Option<Credentials>> {
        let key = username_key(username);
        let holder: Option<(Option<i64>,)> = self
            .first_row(&self.statements.select_username, (&key,))
            .await?;
        let Some((Some(id),)) = holder else {
            return Ok(None);
        };
        let credentials = self
            .user_row(id_from_cql(id))
            .await?
            .and_then(UserRow::into_credentials)
            // A claim whose registration is still being written (or failed
            // uncertainly) has no user yet; and a user always matches its name.
            .filter(|credentials| username_key(&credentials.user.username) == key);
        Ok(credentials)
    }

    pub(super) async fn users_by_username_impl(
        &self,
        usernames: &[String],
    ) -> Result<Vec<UserRecord>> {
        let mut keys: Vec<String> = usernames.iter().map(|name| username_key(name)).collect();
        keys.sort_unstable();
        keys.dedup();
        let found = self
            .concurrently(keys, |key| async move { self.credentials_impl(&key).await })
            .await?;
        Ok(found
            .into_iter()
            .flatten()
            .map(|credentials| credentials.user)
            .collect())
    }

    /// A prefix of two or more characters names its partition: one slice.
    /// A shorter one reads the directory of non-empty partitions (one small
    /// partition for one character; every directory in order for none,
    /// stopping when the page is full) and slices them in order.
    pub(super) async fn search_users_impl(
        &self,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<UserRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let key = username_key(prefix);
        let end = prefix_end(&key);
        let directories: Vec<String> = match key.chars().count() {
            0 => all_directories(),
            _ => vec![prefix_directory(&key).to_owned()],
        };
        let mut found: Vec<(String, i64)> = Vec::new();
        for directory in directories {
            if found.len() >= limit as usize {
                break;
            }
            let partitions: Vec<String> = if key.chars().count() >= PREFIX_CHARS {
                vec![prefix_partition(&key).to_owned()]
            } else {
                let rows: Vec<(String,)> = self
                    .all_rows(
                        &self.statements.select_prefixes,
                        (directory.as_str(), key.as_str(), end.as_str()),
                    )
                    .await?;
                rows.into_iter().map(|(partition,)| partition).collect()
            };
            for partition in partitions {
                let remaining = (limit as usize).saturating_sub(found.len());
                if remaining == 0 {
                    break;
                }
                let rows: Vec<(String, i64)> = self
                    .rows(
                        &self.statements.search_prefix,
                        (
                            partition.as_str(),
                            key.as_str(),
                            end.as_str(),
                            i32::try_from(remaining).unwrap_or(i32::MAX),
                        ),
                    )
                    .await?;
                found.extend(rows);
            }
        }

        let users = self
            .concurrently(
                found.into_iter().enumerate(),
                |(position, (name, id))| async move {
                    let user = self.user_row(id_from_cql(id)).await?;
                    Ok((position, name, user))
                },
            )
            .await?;
        let mut users: Vec<(usize, UserRecord)> = users
            .into_iter()
            .filter_map(|(position, name, row)| {
                row.and_then(UserRow::into_user)
                    // A search row of a since-changed name is not a match.
                    .filter(|user| username_key(&user.username) == name)
                    .map(|user| (position, user))
            })
            .collect();
        users.sort_by_key(|(position, _)| *position);
        Ok(users.into_iter().map(|(_, user)| user).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_listed_under_their_first_character() {
        assert_eq!(prefix_directory("ab"), "a");
        assert_eq!(prefix_directory("a"), "a");
        assert_eq!(prefix_directory(""), "");
        assert_eq!(prefix_directory(prefix_partition("zed")), "z");
    }

    #[test]
    fn every_directory_in_username_order() {
        let directories = all_directories();
        // Lower-case letters, digits, '_', '.', '-': 39 partitions.
        assert_eq!(directories.len(), 39);
        let mut sorted = directories.clone();
        sorted.sort();
        assert_eq!(directories, sorted, "in the order CQL sorts text");
        for name in ["alice", "0day", "_x", ".dot", "-dash"] {
            let key = username_key(name);
            assert!(directories.contains(&prefix_directory(&key).to_owned()));
        }
    }
}
