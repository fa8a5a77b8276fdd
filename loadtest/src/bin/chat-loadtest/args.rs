//! Command line of `chat-loadtest`, and the checks that keep a run bounded.

use std::path::PathBuf;
use std::time::Duration;

use chat_protocol::Codec;
use clap::{Parser, ValueEnum};

/// Load generator for chatd: registers users, puts them in rooms, opens one
/// WebSocket per user and sends messages at a fixed total rate, measuring
/// ack and delivery latency. Speaks only the public protocol.
#[derive(Debug, Parser)]
#[command(name = "chat-loadtest", version)]
pub struct Args {
    /// Base URL of the server (http only), or of several gateways of one
    /// cluster separated by commas: setup (REST) goes to the first, and
    /// connection i to gateway i mod N. Nothing else is contacted.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Users to register; each gets one WebSocket connection (1–20000: one
    /// file descriptor each, and `ulimit -n` is 20,000 on the benchmark machine).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=20000))]
    pub users: u32,
    /// Public rooms to create (1–users).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub rooms: u32,
    /// How users are put in rooms. `spread`: user i is in room i mod R only
    /// (fan-out users/rooms). `all`: every user in every room (fan-out
    /// users), each send going to the user's next room in turn.
    #[arg(long, value_enum, default_value_t = Membership::Spread)]
    pub membership: Membership,
    /// Messages per second, in total over all users.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Seconds of sending (1–3600).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration: u64,
    /// Seconds to wait after sending for outstanding acks and deliveries
    /// (0–300); the run ends earlier once everything has arrived.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub drain: u64,
    /// Wire codec of the WebSocket connections.
    #[arg(long, value_enum, default_value_t = CodecArg::Json)]
    pub codec: CodecArg,
    /// Length of each message's content, in bytes (ASCII; 1–4000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=4000))]
    pub content_bytes: u32,
    /// The server's per-user `send` limit (CHAT_RATES__SEND_PER_SECOND);
    /// only used to warn when the per-user rate would be refused.
    #[arg(long, default_value_t = 10.0)]
    pub server_send_rate: f64,
    /// Write the summary as JSON to this file too.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Pid of the server process: its VmRSS/VmHWM from /proc are reported.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// A process of the cluster under test (repeatable): the CPU seconds
    /// and resident memory of every `--cluster-pid` and `--cluster-process`
    /// are summed (server processes and Redis alike).
    #[arg(long = "cluster-pid")]
    pub cluster_pids: Vec<u32>,
    /// Every running process of this name (`/proc/<pid>/comm`, e.g.
    /// `chatd`, `redis-server`; repeatable) counts as part of the cluster,
    /// as found when the send window starts.
    #[arg(long = "cluster-process")]
    pub cluster_processes: Vec<String>,
    /// A shell command run (and waited for) at the end of the drain,
    /// before the connections close: to read server-side counters over the
    /// same window as the CPU figures, without the connections' closing
    /// (e.g. `redis-cli info commandstats > file`).
    #[arg(long)]
    pub on_drained: Option<String>,
    /// Password of the generated users.
    #[arg(long, default_value = "loadtest-password")]
    pub password: String,
    /// Concurrent REST calls during setup (register is argon2-bound on the
    /// server).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub setup_concurrency: u32,
    /// Worker threads of this tool's runtime. The default (1) leaves the
    /// other core of a 2-core machine to the server.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: u32,
    /// Idle scenario instead: open this many connections (spread over
    /// `--users` users and source addresses 127.0.0.2…), hold them for
    /// `--duration` seconds and report connect rate and server RSS per
    /// connection. Sends nothing.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub idle: Option<u32>,
    /// No progress bar even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Membership {
    Spread,
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CodecArg {
    Json,
    Msgpack,
}

impl Membership {
    pub fn as_str(self) -> &'static str {
        match self {
            Membership::Spread => "spread",
            Membership::All => "all",
        }
    }
}

impl From<CodecArg> for Codec {
    fn from(arg: CodecArg) -> Codec {
        match arg {
            CodecArg::Json => Codec::Json,
            CodecArg::Msgpack => Codec::MsgPack,
        }
    }
}

impl Args {
    /// Checks what clap cannot: rates and the rooms/users relation.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.rate > 0.0 && self.rate <= 100_000.0) {
            anyhow::bail!("--rate must be above 0 and at most 100000 messages/s");
        }
        if self.rooms > self.users {
            anyhow::bail!(
                "--rooms ({}) cannot exceed --users ({})",
                self.rooms,
                self.users
            );
        }
        if self.password.len() < chat_protocol::limits::PASSWORD_MIN {
            anyhow::bail!("--password needs at least 8 characters");
        }
        Ok(())
    }

    /// Messages per second each user sends.
    pub fn per_user_rate(&self) -> f64 {
        self.rate / f64::from(self.users)
    }

    /// Time between two sends of one user.
    pub fn send_interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_user_rate())
    }

    /// Members of each room.
    pub fn members_per_room(&self, room: u32) -> u32 {
        match self.membership {
            Membership::All => self.users,
            // Users room, room + R, room + 2R, … below N.
            Membership::Spread => (self.users - room).div_ceil(self.rooms),
        }
    }

    /// The rooms (indices) user `user` is in.
    pub fn rooms_of(&self, user: u32) -> Vec<u32> {
        match self.membership {
            Membership::All => (0..self.rooms).collect(),
            Membership::Spread => vec![user % self.rooms],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(users: u32, rooms: u32, membership: Membership) -> Args {
        let mut args = Args::parse_from(["chat-loadtest"]);
        args.users = users;
        args.rooms = rooms;
        args.membership = membership;
        args
    }

    #[test]
    fn spread_membership_adds_up() {
        for (users, rooms) in [(50, 5), (7, 3), (1, 1), (200, 1), (10, 10)] {
            let a = args(users, rooms, Membership::Spread);
            let total: u32 = (0..rooms).map(|r| a.members_per_room(r)).sum();
            assert_eq!(total, users);
            for r in 0..rooms {
                let counted = (0..users).filter(|u| a.rooms_of(*u).contains(&r)).count();
                assert_eq!(
                    counted as u32,
                    a.members_per_room(r),
                    "{users}/{rooms} room {r}"
                );
            }
        }
        assert_eq!(args(9, 3, Membership::All).members_per_room(2), 9);
    }

    #[test]
    fn defaults_are_valid() {
        let a = Args::parse_from(["chat-loadtest"]);
        a.validate().unwrap();
        assert_eq!(a.per_user_rate(), 4.0);
        assert_eq!(a.server, "http://127.0.0.1:8080");
    }
}
