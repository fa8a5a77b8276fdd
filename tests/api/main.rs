//! Integration tests of the REST API: each test starts the real `chatd`
//! binary on a free port with its own data directory and checks what an
//! HTTP client sees.

mod harness;

mod accounts;
mod auth;
mod bad_input;
mod bounded;
mod caps;
mod chat_client;
mod cluster;
mod cors;
mod dashboards;
mod data_dir;
mod directory;
mod dms;
mod files;
mod hub;
mod json_answers;
mod limits;
mod messages;
mod notifications;
mod ops_listen;
mod outages;
mod partitions;
mod realtime;
mod realtime_failures;
mod redis_link;
mod restart;
mod roles;
mod room_size;
mod rooms;
mod runtime;
mod secrets;
mod telemetry;
mod typing;
mod users;
mod web;
mod ws;
mod ws_protocol;
