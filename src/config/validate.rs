//! The values refused at start-up: each would break the service at run
//! time, so `chatd` exits with a message naming the setting instead.

use anyhow::Context;

use super::{Config, MAX_RUNTIME_THREADS};

impl Config {
    /// Refuses values that would break the service at run time.
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        use anyhow::ensure;
        ensure!(
            self.worker_id <= chat_protocol::id::MAX_WORKER_ID,
            "worker_id must be 0 to {}",
            chat_protocol::id::MAX_WORKER_ID
        );
        ensure!(self.token_ttl_secs > 0, "token_ttl_secs must be positive");
        ensure!(
            self.runtime_threads <= MAX_RUNTIME_THREADS,
            "runtime_threads must be 0 (one per CPU) to {MAX_RUNTIME_THREADS}"
        );
        // The ScyllaDB store finds outstanding revocations by expiry day, up
        // to this many days ahead.
        let max_days = chat_persistence::scylla::REVOCATION_DAYS;
        ensure!(
            self.token_ttl_secs <= max_days * 24 * 3600,
            "token_ttl_secs must be at most {max_days} days"
        );
        ensure!(
            self.revocation_refresh_secs >= 1,
            "revocation_refresh_secs must be at least 1"
        );
        ensure!(
            self.missed_rooms_check_secs >= 1,
            "missed_rooms_check_secs must be at least 1"
        );
        ensure!(
            self.audit.retention_days >= 1,
            "audit.retention_days must be at least 1"
        );
        ensure!(self.audit.queue >= 1, "audit.queue must be at least 1");
        chat_gateway::client_addr::TrustedProxies::parse(&self.trusted_proxies)
            .map_err(anyhow::Error::msg)?;
        ensure!(
            self.limits.max_body_bytes >= 1024,
            "limits.max_body_bytes must be at least 1024"
        );
        ensure!(
            self.sqlite.read_pool_size >= 1,
            "sqlite.read_pool_size must be at least 1"
        );
        ensure!(
            self.sqlite.max_batch >= 1,
            "sqlite.max_batch must be at least 1"
        );
        ensure!(
            self.sqlite.queue_capacity >= 1,
            "sqlite.queue_capacity must be at least 1"
        );
        ensure!(
            self.limits.max_connections_per_user >= 1 && self.limits.max_connections >= 1,
            "limits.max_connections_per_user and limits.max_connections must be at least 1"
        );
        ensure!(
            self.limits.header_timeout_ms >= 100 && self.limits.max_pending_requests >= 1,
            "limits.header_timeout_ms must be at least 100 and limits.max_pending_requests at least 1"
        );
        ensure!(
            [
                self.limits.body_idle_timeout_ms,
                self.limits.body_timeout_ms,
                self.limits.keep_alive_timeout_ms,
                self.limits.send_timeout_ms,
            ]
            .iter()
            .all(|&ms| ms >= 100),
            "limits.body_idle_timeout_ms, limits.body_timeout_ms, limits.keep_alive_timeout_ms and limits.send_timeout_ms must be at least 100"
        );
        ensure!(
            self.limits.hash_queue >= 1
                && self.limits.ready_rooms >= 1
                && self.limits.resume_messages >= 1,
            "limits.hash_queue, limits.ready_rooms and limits.resume_messages must be at least 1"
        );
        ensure!(
            self.ops_listen
                .is_none_or(|ops| ops != self.listen || ops.port() == 0),
            "ops_listen must differ from listen"
        );
        let rates = &self.rates;
        ensure!(
            rates.send_per_second > 0.0 && rates.send_per_second.is_finite(),
            "rates.send_per_second must be a positive number"
        );
        ensure!(rates.send_burst >= 1, "rates.send_burst must be at least 1");
        ensure!(
            rates.typing_interval_ms >= 1,
            "rates.typing_interval_ms must be at least 1"
        );
        let rooms = &self.rooms;
        ensure!(
            rooms.max_members_cap >= chat_router::room_size::MIN_MAX_MEMBERS,
            "rooms.max_members_cap must be at least {}",
            chat_router::room_size::MIN_MAX_MEMBERS
        );
        ensure!(
            (chat_router::room_size::MIN_MAX_MEMBERS..=rooms.max_members_cap)
                .contains(&rooms.default_max_members),
            "rooms.default_max_members must be {} to rooms.max_members_cap",
            chat_router::room_size::MIN_MAX_MEMBERS
        );
        ensure!(
            rates.actions_per_second > 0.0 && rates.actions_per_second.is_finite(),
            "rates.actions_per_second must be a positive number"
        );
        ensure!(
            rates.action_burst >= 1,
            "rates.action_burst must be at least 1"
        );
        ensure!(
            rates.login_per_address_per_minute >= 1 && rates.login_per_username_per_minute >= 1,
            "rates.login_per_address_per_minute and rates.login_per_username_per_minute \
             must be at least 1"
        );
        ensure!(
            rates.rooms_created_per_hour >= 1 && rates.members_added_per_minute >= 1,
            "rates.rooms_created_per_hour and rates.members_added_per_minute must be at least 1"
        );
        ensure!(
            (1..=chat_protocol::limits::MAX_INITIAL_MEMBERS as u32)
                .contains(&rooms.members_per_call),
            "rooms.members_per_call must be 1 to {}",
            chat_protocol::limits::MAX_INITIAL_MEMBERS
        );
        // One call's members are charged at once, all or none: a call
        // bigger than the bucket could never pass.
        ensure!(
            rooms.members_per_call <= rates.members_added_per_minute,
            "rooms.members_per_call must not exceed rates.members_added_per_minute"
        );
        let realtime = &self.realtime;
        ensure!(
            realtime.heartbeat_interval_ms >= 100,
            "realtime.heartbeat_interval_ms must be at least 100"
        );
        ensure!(
            realtime.persist_batch >= 1,
            "realtime.persist_batch must be at least 1"
        );
        ensure!(
            realtime.read_interval_ms.unwrap_or(0) <= 1000,
            "realtime.read_interval_ms must be at most 1000: it is added to every message's latency"
        );
        ensure!(
            realtime.outbound_queue >= realtime.persist_batch,
            "realtime.outbound_queue must be at least realtime.persist_batch: a batch fans out to \
             a connection back to back, and a smaller queue would cut off healthy clients"
        );
        ensure!(
            realtime.reply_timeout_ms >= 100,
            "realtime.reply_timeout_ms must be at least 100"
        );
        ensure!(
            realtime.stream_capacity >= 1,
            "realtime.stream_capacity must be at least 1"
        );
        ensure!(
            realtime.subscription_buffer >= 1,
            "realtime.subscription_buffer must be at least 1"
        );
        ensure!(
            (1..=chat_bus::partitions::MAX_PARTITIONS).contains(&realtime.partitions),
            "realtime.partitions must be 1 to {}",
            chat_bus::partitions::MAX_PARTITIONS
        );
        ensure!(
            realtime
                .persist_partitions
                .is_none_or(|n| (1..=chat_bus::partitions::MAX_PARTITIONS).contains(&n)),
            "realtime.persist_partitions must be 1 to {}",
            chat_bus::partitions::MAX_PARTITIONS
        );
        ensure!(
            realtime.partition_lease_ms >= 300,
            "realtime.partition_lease_ms must be at least 300"
        );
        ensure!(
            realtime.presence_ttl_ms >= 300,
            "realtime.presence_ttl_ms must be at least 300"
        );
        self.scylla
            .options()
            .context("invalid scylla configuration")?;
        let files = &self.files;
        ensure!(
            files.max_file_bytes >= 1,
            "files.max_file_bytes must be at least 1"
        );
        ensure!(
            files.uploads_per_minute >= 1 && files.upload_burst >= 1,
            "files.uploads_per_minute and files.upload_burst must be at least 1"
        );
        ensure!(
            files.concurrent_uploads >= 1 && files.concurrent_uploads_per_user >= 1,
            "files.concurrent_uploads and files.concurrent_uploads_per_user must be at least 1"
        );
        ensure!(
            files.concurrent_downloads >= 1 && files.concurrent_downloads_per_user >= 1,
            "files.concurrent_downloads and files.concurrent_downloads_per_user must be at least 1"
        );
        ensure!(
            files.sweep_interval_secs >= 1,
            "files.sweep_interval_secs must be at least 1"
        );
        ensure!(
            [&self.jwt_issuer, &self.jwt_audience]
                .iter()
                .all(|value| value.as_deref().is_none_or(|v| !v.trim().is_empty())),
            "jwt_issuer and jwt_audience may not be empty; leave them out to check neither"
        );
        ensure!(
            self.redis_url
                .as_deref()
                .is_none_or(|url| !url.trim().is_empty()),
            "redis_url is empty; leave it out to run without Redis"
        );
        Ok(())
    }
}
