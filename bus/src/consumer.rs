//! The loop every work-stream consumer runs: hold a fair share of the
//! stream's partitions (see [`partitions`]), take over
//! what a previous holder left unacknowledged on a partition it gains, read
//! new entries of the partitions it holds, hand everything one read brought
//! to the role at once (a [`Batch`] per partition, each in stream order),
//! and acknowledge them once handled.
//!
//! One hand-off per read, not per partition, is what lets a role pay its
//! fixed costs (a rate-limit script, a store transaction and its fsync, a
//! pipeline of publishes) once for every partition it holds: with many
//! partitions and a moderate rate, a read brings a few entries on each of
//! several partitions, and per-partition hand-offs would pay them per entry.
//!
//! Acknowledgements are gathered and sent together (one XACK per partition)
//! at most [`ACK_EVERY`] after the first of them, and always before the
//! consumer claims, gives partitions back or stops; acknowledged entries
//! are trimmed from the streams every claim period. So a batch costs one
//! read, not a read, an acknowledgement and a trim per partition; the price
//! is that a crash leaves up to [`ACK_EVERY`] of handled entries pending,
//! handled again by the next holder (the roles' effects are idempotent).
//!
//! Acknowledging only after the handler returns is what makes a consumer's
//! crash harmless: whatever it held stays pending, its leases run out, and
//! the member that takes each partition handles those entries again before
//! any newer one, so a partition's order is kept. A consumer renews its
//! leases every third of their time, while the role handles a batch too
//! (however long that takes), and one whose leases have not been renewed
//! for two thirds of their time stops handling entries until it holds them
//! again, so that two consumers do not work on one partition at once
//! (unless a consumer cut off from the shared state finishes a batch after
//! its leases ran out). A read that fails may have been served (its answer
//! lost): its partitions are set aside and taken over, pending entries
//! first, at once. On shutdown the loop drains: it keeps reading, without
//! waiting, until its partitions have nothing more, then gives them back at
//! once.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::partitions::Leases;
use crate::{Entry, EntryId, SharedState, WorkQueue, partitions};

/// Longest a read waits for new entries.
const READ_WAIT: Duration = Duration::from_millis(500);
/// Pause after a failed read, so an unreachable backend is not hammered.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Longest time a handled entry waits for its acknowledgement to be sent.
pub const ACK_EVERY: Duration = Duration::from_millis(100);

/// The entries one read brought from one partition, in stream order.
#[derive(Debug)]
pub struct Batch {
    pub partition: u16,
    pub entries: Vec<Entry>,
}

/// Which stream a consumer reads, and how.
#[derive(Clone, Debug)]
pub struct ConsumerOptions {
    /// The work stream; partition `p` is the stream `<stream>.<p>`.
    pub stream: &'static str,
    pub group: &'static str,
    /// This consumer's name in the group; unique per process.
    pub consumer: String,
    /// How many partitions the stream has (the same in every process).
    pub partitions: u16,
    /// Most entries of one partition read at once.
    pub batch: usize,
    /// How long a partition lease lives unless renewed (renewed every
    /// third of it): how long a dead consumer's partitions wait.
    pub lease: Duration,
    /// Least time from one read to the next while entries keep coming
    /// (zero: read again at once). A little patience gathers bigger
    /// batches, so fewer round trips per entry, at the cost of up to this
    /// much latency.
    pub min_read_interval: Duration,
}

/// Runs a consumer until `shutdown` asks it to stop and its partitions are
/// drained. `handle` gets what each read brought, one [`Batch`] per
/// partition in increasing partition order (a single one while taking over
/// a partition); every entry is acknowledged when it returns.
pub async fn consume<F, Fut>(
    queue: Arc<dyn WorkQueue>,
    state: Arc<dyn SharedState>,
    options: ConsumerOptions,
    shutdown: CancellationToken,
    mut handle: F,
) where
    F: FnMut(Vec<Batch>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut member = Member {
        queue,
        state,
        options,
        held: Vec::new(),
        renewed: None,
        acks: BTreeMap::new(),
        acks_due: None,
        untrimmed: BTreeSet::new(),
    };
    let mut next_claim = Instant::now();
    let mut last_read: Option<Instant> = None;
    loop {
        let draining = shutdown.is_cancelled();
        if member.acks_due.is_some_and(|due| Instant::now() >= due) {
            member.flush_acks().await;
        }
        if !draining && Instant::now() >= next_claim {
            next_claim = Instant::now() + member.options.lease / 3;
            if member.claim(&mut handle).await {
                member.trim().await;
                member.sample_backlog().await;
            } else {
                // Soon, not a whole period later: a member whose reads
                // failed holds nothing until a claim succeeds.
                next_claim = Instant::now() + RETRY_PAUSE;
            }
        }
        if !member.leases_fresh() && !member.held.is_empty() {
            tracing::warn!(
                stream = member.options.stream,
                "partition leases not renewed in time; pausing until they are"
            );
            // What was handled may be acknowledged whoever holds it now.
            member.flush_acks().await;
            member.held.clear();
        }
        if member.held.is_empty() {
            if draining {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep_until(next_claim) => {}
                () = shutdown.cancelled() => {}
            }
            continue;
        }
        if !draining && let Some(at) = last_read {
            let next_read = at + member.options.min_read_interval;
            if next_read > Instant::now() {
                tokio::time::sleep_until(next_read).await;
            }
        }
        let mut wait = if draining {
            Duration::ZERO
        } else {
            READ_WAIT.min(next_claim.saturating_duration_since(Instant::now()))
        };
        if let Some(due) = member.acks_due {
            wait = wait.min(due.saturating_duration_since(Instant::now()));
        }
        let streams: Vec<String> = member
            .held
            .iter()
            .map(|p| partitions::stream(member.options.stream, *p))
            .collect();
        let options = &member.options;
        last_read = Some(Instant::now());
        // Not cut short by the shutdown (the wait is bounded): a read given
        // up on may still be served, and what it took would then be
        // pending with this consumer unseen.
        let read = member
            .queue
            .read_many(
                &streams,
                options.group,
                &options.consumer,
                options.batch,
                wait,
            )
            .await;
        let entries = match read {
            Ok(entries) => {
                crate::metrics::RECEIVED
                    .with_label_values(&[crate::metrics::kind::STREAM])
                    .inc_by(entries.len() as u64);
                entries
            }
            Err(error) => {
                crate::metrics::RECEIVE_ERRORS
                    .with_label_values(&[crate::metrics::kind::STREAM])
                    .inc();
                tracing::warn!(%error, stream = options.stream, "cannot read");
                // The read may have been served and its answer lost: what
                // it took is then pending with this consumer, and a read
                // of new entries never hands it out again. Every partition
                // is set aside, as after a failed acknowledgement, and
                // taken over (its pending entries first) at the next
                // claim, made at once.
                member.held.clear();
                if draining {
                    break;
                }
                tokio::time::sleep(RETRY_PAUSE).await;
                next_claim = Instant::now();
                continue;
            }
        };
        if entries.is_empty() {
            if draining {
                break;
            }
            continue;
        }
        let mut by_partition: BTreeMap<u16, Vec<Entry>> = BTreeMap::new();
        for (index, entry) in entries {
            if let Some(partition) = member.held.get(index) {
                by_partition.entry(*partition).or_default().push(entry);
            }
        }
        let got = by_partition.values().map(Vec::len).max().unwrap_or(0);
        let batches = by_partition
            .into_iter()
            .map(|(partition, entries)| Batch { partition, entries })
            .collect();
        member.handle(batches, &mut handle).await;
        if got >= member.options.batch {
            // More may be waiting behind a full batch: read again at once.
            last_read = None;
        }
    }
    member.flush_acks().await;
    member.leave().await;
}

/// One consumer's view of its partitions.
struct Member {
    queue: Arc<dyn WorkQueue>,
    state: Arc<dyn SharedState>,
    options: ConsumerOptions,
    /// The partitions being read, in increasing order.
    held: Vec<u16>,
    /// When the last successful claim started.
    renewed: Option<Instant>,
    /// Entries handled and not acknowledged yet, by partition.
    acks: BTreeMap<u16, Vec<EntryId>>,
    /// When `acks` must be sent at the latest.
    acks_due: Option<Instant>,
    /// Partitions acknowledged on since they were last trimmed.
    untrimmed: BTreeSet<u16>,
}

impl Member {
    /// Updates the backlog gauges of every partition of the stream (not
    /// only the held ones: a partition nobody holds is the one whose
    /// backlog matters most). Every member reports the same figures.
    async fn sample_backlog(&self) {
        let options = &self.options;
        for partition in 0..options.partitions {
            let stream = partitions::stream(options.stream, partition);
            match self.queue.backlog(&stream, options.group).await {
                Ok(backlog) => {
                    let labels = [options.stream, options.group, &partition.to_string()];
                    crate::metrics::BACKLOG
                        .with_label_values(&labels)
                        .set(i64::try_from(backlog.entries).unwrap_or(i64::MAX));
                    crate::metrics::OLDEST_AGE
                        .with_label_values(&labels)
                        .set(backlog.oldest_age.unwrap_or_default().as_secs_f64());
                }
                Err(error) => {
                    tracing::debug!(%error, stream, "cannot measure the backlog");
                    return;
                }
            }
        }
    }

    /// Asks the shared state for this member's leases (renewing those it
    /// holds, see [`SharedState::claim_partitions`]), and records when.
    /// Answers them, or `None` if the state could not be reached.
    async fn lease(&mut self) -> Option<Leases> {
        let started = Instant::now();
        let options = &self.options;
        match self
            .state
            .claim_partitions(
                options.group,
                &options.consumer,
                options.partitions,
                options.lease,
            )
            .await
        {
            Ok(leases) => {
                self.renewed = Some(started);
                for lost in self.held.iter().filter(|p| !leases.held.contains(p)) {
                    tracing::warn!(
                        group = options.group,
                        partition = lost,
                        "partition lease lost"
                    );
                }
                Some(leases)
            }
            Err(error) => {
                tracing::warn!(%error, group = options.group, "cannot renew partition leases");
                None
            }
        }
    }

    /// When the leases are next due for renewal: a third of their time
    /// after the last renewal.
    fn renewal_due(&self) -> Instant {
        self.renewed
            .map_or_else(Instant::now, |at| at + self.options.lease / 3)
    }

    /// Renews the leases, takes up gained partitions (handling what their
    /// previous holder left first) and gives back those beyond the share.
    /// Answers whether the shared state could be reached.
    async fn claim<F, Fut>(&mut self, handle: &mut F) -> bool
    where
        F: FnMut(Vec<Batch>) -> Fut,
        Fut: Future<Output = ()>,
    {
        // Whatever is given back below must be acknowledged first.
        self.flush_acks().await;
        let Some(leases) = self.lease().await else {
            return false;
        };
        let options = &self.options;
        let mut now_held = leases.held;
        let share = usize::from(leases.share);
        if now_held.len() > share {
            // Everything read on these is acknowledged (the loop is between
            // batches), so the next holder may start at once.
            let excess = now_held.split_off(share);
            match self
                .state
                .release_partitions(options.group, &options.consumer, &excess, false)
                .await
            {
                Ok(()) => tracing::info!(group = options.group, ?excess, "partitions handed over"),
                Err(error) => {
                    // They run out by themselves; stop working on them now.
                    tracing::warn!(%error, group = options.group, "cannot give partitions back");
                }
            }
        }
        let gained: Vec<u16> = now_held
            .iter()
            .copied()
            .filter(|p| !self.held.contains(p))
            .collect();
        if !gained.is_empty() {
            tracing::info!(group = options.group, ?gained, "partitions taken");
        }
        self.held = now_held;
        for partition in gained {
            if !self.take_over(partition, handle).await {
                self.held.retain(|p| *p != partition);
            }
        }
        true
    }

    /// Handles what is pending on a gained partition (left by its previous
    /// holder, or by this consumer before a failed acknowledgement), oldest
    /// first, before anything new is read from it. Answers `false` if it
    /// could not finish.
    async fn take_over<F, Fut>(&mut self, partition: u16, handle: &mut F) -> bool
    where
        F: FnMut(Vec<Batch>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let stream = partitions::stream(self.options.stream, partition);
        loop {
            let claimed = self
                .queue
                .claim_stale(
                    &stream,
                    self.options.group,
                    &self.options.consumer,
                    Duration::ZERO,
                    self.options.batch,
                )
                .await;
            match claimed {
                Ok(entries) if entries.is_empty() => return true,
                Ok(entries) => {
                    tracing::info!(%stream, entries = entries.len(), "handling entries left pending");
                    self.handle(vec![Batch { partition, entries }], handle)
                        .await;
                    // Acknowledged before claiming more: the claim would
                    // hand the same entries out again.
                    if self.flush_acks().await.contains(&partition) {
                        return false;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, %stream, "cannot take over pending entries");
                    return false;
                }
            }
        }
    }

    /// Hands a read's batches to the role and queues their
    /// acknowledgements.
    async fn handle<F, Fut>(&mut self, batches: Vec<Batch>, handle: &mut F)
    where
        F: FnMut(Vec<Batch>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let ids: Vec<(u16, Vec<EntryId>)> = batches
            .iter()
            .map(|batch| {
                let ids = batch.entries.iter().map(|e| e.id.clone()).collect();
                (batch.partition, ids)
            })
            .collect();
        // The leases are renewed while the role works, however long that
        // takes (a store that is down is retried until it is back): a
        // lease that ran out meanwhile would let another member take the
        // partition and handle these entries too.
        let handling = handle(batches);
        tokio::pin!(handling);
        let mut renew_at = self.renewal_due();
        loop {
            tokio::select! {
                () = &mut handling => break,
                () = tokio::time::sleep_until(renew_at) => {
                    // Partitions gained meanwhile are taken up at the next
                    // claim (they are not in `held` yet); the batch in hand
                    // is finished even if one was lost.
                    renew_at = if self.lease().await.is_some() {
                        self.renewal_due()
                    } else {
                        Instant::now() + RETRY_PAUSE
                    };
                }
            }
        }
        for (partition, ids) in ids {
            self.acks.entry(partition).or_default().extend(ids);
        }
        self.acks_due
            .get_or_insert_with(|| Instant::now() + ACK_EVERY);
    }

    /// Sends every queued acknowledgement (one XACK per partition, all at
    /// once). A partition whose acknowledgement fails is set aside: its
    /// entries stay pending with this consumer and are handled again, first,
    /// when the partition is taken up at the next claim. Answers those
    /// partitions.
    async fn flush_acks(&mut self) -> Vec<u16> {
        self.acks_due = None;
        let acks = std::mem::take(&mut self.acks);
        let (queue, options) = (&self.queue, &self.options);
        let sent = futures_util::future::join_all(acks.into_iter().map(|(partition, ids)| {
            let stream = partitions::stream(options.stream, partition);
            async move {
                let result = queue.ack(&stream, options.group, &ids).await;
                if let Err(error) = &result {
                    tracing::warn!(%error, %stream, "cannot acknowledge entries");
                }
                (partition, result.is_ok())
            }
        }))
        .await;
        let mut failed = Vec::new();
        for (partition, ok) in sent {
            if ok {
                self.untrimmed.insert(partition);
            } else {
                self.held.retain(|p| *p != partition);
                failed.push(partition);
            }
        }
        failed
    }

    /// Trims what was acknowledged on each partition since the last trim.
    async fn trim(&mut self) {
        let untrimmed = std::mem::take(&mut self.untrimmed);
        let (queue, options) = (&self.queue, &self.options);
        futures_util::future::join_all(untrimmed.into_iter().map(|partition| {
            let stream = partitions::stream(options.stream, partition);
            async move {
                if let Err(error) = queue.trim(&stream, options.group).await {
                    tracing::debug!(%error, %stream, "cannot trim");
                }
            }
        }))
        .await;
    }

    /// Whether the leases were renewed recently enough to keep working.
    fn leases_fresh(&self) -> bool {
        self.renewed
            .is_some_and(|at| at.elapsed() < self.options.lease * 2 / 3)
    }

    /// Gives every partition back and leaves the group, so that the others
    /// take them at once instead of after the lease.
    async fn leave(&self) {
        let options = &self.options;
        // All of them: a lease this consumer stopped using while it was not
        // renewed may still be its own.
        let all: Vec<u16> = (0..options.partitions).collect();
        if let Err(error) = self
            .state
            .release_partitions(options.group, &options.consumer, &all, true)
            .await
        {
            tracing::warn!(%error, group = options.group, "cannot give partitions back");
        }
        tracing::info!(stream = options.stream, consumer = %options.consumer, "consumer stopped");
    }
}
