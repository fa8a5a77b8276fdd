//! The Lua scripts behind every multi-step Redis operation, each atomic
//! because Redis runs a script without interleaving other commands.
//!
//! They are sent by SHA-1 (EVALSHA) and loaded again when a server answers
//! NOSCRIPT, as a restarted or newly added node does. Every key a script
//! touches shares the hash tag of its first key, so each one runs on one
//! node of a cluster; the sources in `lua/` say what each key and argument
//! is.

use std::sync::LazyLock;

use fred::clients::Pool;
use fred::prelude::{FromValue, Key, Value};
use fred::types::scripts::Script;

use super::error;
use crate::Result;

/// The presence helpers, prepended to each presence script.
const PRESENCE: &str = include_str!("lua/presence.lua");
/// The token bucket rule, prepended to the scripts that take tokens.
const BUCKET: &str = include_str!("lua/bucket.lua");
/// The trimming rule, prepended to the scripts that trim.
const TRIMMING: &str = include_str!("lua/trimming.lua");

pub(crate) struct Scripts {
    pub(crate) take_token: Script,
    pub(crate) admit: Script,
    pub(crate) presence_opened: Script,
    pub(crate) presence_alive: Script,
    pub(crate) presence_closed: Script,
    pub(crate) presence_online: Script,
    pub(crate) presence_sweep: Script,
    pub(crate) lease_worker: Script,
    pub(crate) renew_worker: Script,
    pub(crate) claim_partitions: Script,
    pub(crate) release_partitions: Script,
    pub(crate) append: Script,
    pub(crate) trim: Script,
    pub(crate) claim: Script,
    pub(crate) backlog: Script,
}

fn bucket(body: &str) -> Script {
    Script::from_lua(format!("{BUCKET}\n{body}"))
}

fn trimming(body: &str) -> Script {
    Script::from_lua(format!("{TRIMMING}\n{body}"))
}

fn presence(body: &str) -> Script {
    Script::from_lua(format!("{PRESENCE}\n{body}"))
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    take_token: bucket(include_str!("lua/take_token.lua")),
    admit: bucket(include_str!("lua/admit.lua")),
    presence_opened: presence(include_str!("lua/presence_opened.lua")),
    presence_alive: presence(include_str!("lua/presence_alive.lua")),
    presence_closed: presence(include_str!("lua/presence_closed.lua")),
    presence_online: presence(include_str!("lua/presence_online.lua")),
    presence_sweep: presence(include_str!("lua/presence_sweep.lua")),
    lease_worker: Script::from_lua(include_str!("lua/lease_worker.lua")),
    renew_worker: Script::from_lua(include_str!("lua/renew_worker.lua")),
    claim_partitions: Script::from_lua(include_str!("lua/claim_partitions.lua")),
    release_partitions: Script::from_lua(include_str!("lua/release_partitions.lua")),
    append: trimming(include_str!("lua/append.lua")),
    trim: trimming(include_str!("lua/trim.lua")),
    claim: Script::from_lua(include_str!("lua/claim.lua")),
    backlog: Script::from_lua(include_str!("lua/backlog.lua")),
});

/// Runs `script` on the pool, loading it first if the server lacks it.
pub(crate) async fn run<R: FromValue>(
    pool: &Pool,
    script: &Script,
    keys: Vec<Key>,
    args: Vec<Value>,
) -> Result<R> {
    script
        .evalsha_with_reload(pool.next_connected(), keys, args)
        .await
        .map_err(error)
}
