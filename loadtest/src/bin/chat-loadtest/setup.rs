//! Before the clock starts: users, rooms, memberships and connections, all
//! through the public API. Every step is bounded in concurrency and fails
//! the run with the server's own error if the server refuses.

use std::time::{Duration, Instant};

use anyhow::Context;
use chat_loadtest::api::Api;
use chat_loadtest::ws::{self, Incoming, Socket};
use chat_protocol::frames::ServerFrame;
use chat_protocol::{Codec, RoomId, User};
use futures_util::{StreamExt, TryStreamExt, stream};

use crate::args::Args;

/// A registered user of this run.
pub struct Member {
    pub index: u32,
    pub user: User,
    pub api: Api,
}

/// The registered users, in index order.
pub async fn register_users(args: &Args, api: &Api, run_id: &str) -> anyhow::Result<Vec<Member>> {
    let mut members: Vec<Member> = stream::iter(0..args.users)
        .map(|index| {
            let api = api.clone();
            let username = format!("lt_{run_id}_{index}");
            let password = args.password.clone();
            async move {
                let auth = api
                    .register(&username, &password)
                    .await
                    .with_context(|| format!("registering {username}"))?;
                anyhow::Ok(Member {
                    index,
                    api: api.with_token(auth.token),
                    user: auth.user,
                })
            }
        })
        .buffer_unordered(args.setup_concurrency as usize)
        .try_collect()
        .await?;
    members.sort_by_key(|m| m.index);
    Ok(members)
}

/// Creates the rooms (room r owned by user r) and puts every user in the
/// rooms [`Args::rooms_of`] gives.
pub async fn make_rooms(
    args: &Args,
    members: &[Member],
    run_id: &str,
) -> anyhow::Result<Vec<RoomId>> {
    let mut rooms = Vec::with_capacity(args.rooms as usize);
    for r in 0..args.rooms {
        let name = format!("lt-{run_id}-room-{r}");
        let room = members[r as usize]
            .api
            .create_room(&name)
            .await
            .with_context(|| format!("creating room {name}"))?;
        rooms.push(room.id);
    }
    let joins: Vec<(usize, RoomId)> = members
        .iter()
        .flat_map(|m| {
            args.rooms_of(m.index)
                .into_iter()
                .filter(move |r| *r != m.index) // room r's owner is user r
                .map(|r| (m.index as usize, rooms[r as usize]))
        })
        .collect();
    stream::iter(joins)
        .map(|(member, room)| {
            let api = members[member].api.clone();
            async move {
                api.join(&room)
                    .await
                    .with_context(|| format!("user {member} joining room {room}"))
            }
        })
        .buffer_unordered(args.setup_concurrency as usize)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(rooms)
}

/// Opens one connection per user, waits for each one's `ready` (which must
/// list the user's rooms) and hands the socket to `start` at once, so that
/// it is read from then on: frames left unread would pile up in the
/// server's per-connection queue. User i connects to `servers[i mod N]`
/// (the gateways of a cluster share the load).
pub async fn connect_all<T>(
    args: &Args,
    members: &[Member],
    rooms: &[RoomId],
    servers: &[reqwest::Url],
    codec: Codec,
    start: impl Fn(u32, Socket) -> T,
) -> anyhow::Result<Vec<T>> {
    let start = &start;
    let mut started: Vec<(u32, T)> = stream::iter(members)
        .map(|member| {
            let expected: Vec<RoomId> = args
                .rooms_of(member.index)
                .into_iter()
                .map(|r| rooms[r as usize])
                .collect();
            let server = &servers[member.index as usize % servers.len()];
            async move {
                let token = member.api.token().expect("signed in");
                let mut socket = ws::connect(server, token, codec)
                    .await
                    .with_context(|| format!("connecting user {}", member.index))?;
                let ready = tokio::time::timeout(Duration::from_secs(10), first_frame(&mut socket))
                    .await
                    .map_err(|_| {
                        anyhow::anyhow!("user {}: no ready frame within 10 s", member.index)
                    })??;
                let ServerFrame::Ready { rooms: listed, .. } = ready else {
                    anyhow::bail!("user {}: first frame is not ready: {ready:?}", member.index);
                };
                for room in expected {
                    if !listed.iter().any(|s| s.room.id == room) {
                        anyhow::bail!("user {}: ready does not list room {room}", member.index);
                    }
                }
                anyhow::Ok((member.index, start(member.index, socket)))
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    started.sort_by_key(|(index, _)| *index);
    Ok(started.into_iter().map(|(_, task)| task).collect())
}

async fn first_frame(socket: &mut Socket) -> anyhow::Result<ServerFrame> {
    while let Some(message) = socket.next().await {
        match ws::decode(&message?) {
            Incoming::Frame(frame) => return Ok(*frame),
            Incoming::Undecodable(error) => anyhow::bail!("undecodable first frame: {error}"),
            Incoming::Closed(code, reason) => anyhow::bail!("closed before ready: {code} {reason}"),
            Incoming::Control => {}
        }
    }
    anyhow::bail!("connection ended before ready")
}

/// Seconds since `start`, for the setup timings.
pub fn secs(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}
