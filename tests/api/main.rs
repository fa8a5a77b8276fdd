//! Integration tests of the REST API: each test starts the real `chatd`
//! binary on a free port with its own data directory and checks what an
//! HTTP client sees.

mod harness;

mod auth;
mod bad_input;
mod cluster;
mod dms;
mod files;
mod messages;
mod realtime;
mod realtime_failures;
mod restart;
mod rooms;
mod users;
mod ws;
