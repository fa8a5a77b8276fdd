//! Integration tests of the REST API: each test starts the real `chatd`
//! binary on a free port with its own data directory and checks what an
//! HTTP client sees.

mod harness;

mod accounts;
mod auth;
mod bad_input;
mod chat_client;
mod cluster;
mod data_dir;
mod dms;
mod files;
mod hub;
mod json_answers;
mod limits;
mod messages;
mod partitions;
mod realtime;
mod realtime_failures;
mod restart;
mod roles;
mod rooms;
mod users;
mod ws;
