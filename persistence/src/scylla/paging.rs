//! Walking a room's buckets: the history pages and the unread count, written
//! over an abstract `fetch` so that the walk itself is tested against an
//! in-memory model (see the property tests below) rather than a server.
//!
//! A walk visits buckets one at a time, newest first when travelling back
//! (no cursor, or `before`) and oldest first when travelling forward
//! (`after`). Within a bucket it reads slices of at most the number of rows
//! it still wants; a slice that comes back full is followed by another from
//! the last row on (keyset paging), a short one means the bucket is done.
//!
//! Every walk is bounded on both sides: never below the room's first bucket
//! (its creation time, less a slack) and never above the bucket of "now"
//! (plus a slack), whatever the cursors say. So an empty room, or a cursor
//! from the far past or future, costs at most one query per bucket of the
//! room's lifetime, and usually one query in all.

use std::future::Future;

use chat_protocol::Id;

use super::buckets::Buckets;
use crate::Result;
use crate::records::PageRequest;

/// Which way a walk travels through history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Newest first.
    Backward,
    /// Oldest first.
    Forward,
}

/// One read of a walk: the rows of `bucket` with `after < id < before`
/// (a missing bound is open), in the walk's direction, at most `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BucketQuery {
    pub bucket: i32,
    pub after: Option<Id>,
    pub before: Option<Id>,
    pub direction: Direction,
    pub limit: u32,
}

/// A row a walk can resume after.
pub(crate) trait Keyed {
    fn key(&self) -> Id;
}

impl Keyed for Id {
    fn key(&self) -> Id {
        *self
    }
}

/// What a walk's visitor answers for each row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Visit {
    /// Go on; the next read may return this many rows (0 stops the walk).
    Want(u32),
    /// Stop here.
    Done,
}

/// The buckets a walk visits, `from` to `to` inclusive in its direction,
/// and the exclusive id bounds of every read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Walk {
    pub direction: Direction,
    pub from: i32,
    pub to: i32,
    pub after: Option<Id>,
    pub before: Option<Id>,
}

/// The buckets a room's messages can lie in: from its creation (`floor`) to
/// now (`ceiling`), both inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub floor: i32,
    pub ceiling: i32,
}

impl Walk {
    /// A walk of `direction` from `from` to `to`, or `None` if that range
    /// holds no bucket (say, a forward walk whose start lies past its end).
    fn between(
        direction: Direction,
        from: i32,
        to: i32,
        after: Option<Id>,
        before: Option<Id>,
    ) -> Option<Walk> {
        let empty = match direction {
            Direction::Backward => from < to,
            Direction::Forward => from > to,
        };
        (!empty).then_some(Walk {
            direction,
            from,
            to,
            after,
            before,
        })
    }

    /// The walk that serves a page request in a room spanning `span`, or
    /// `None` when the page is empty without reading anything.
    pub(crate) fn for_page(request: &PageRequest, span: Span, buckets: &Buckets) -> Option<Walk> {
        match (request.before, request.after) {
            (None, None) => {
                Walk::between(Direction::Backward, span.ceiling, span.floor, None, None)
            }
            (Some(before), None) => Walk::between(
                Direction::Backward,
                buckets.of(before).min(span.ceiling),
                span.floor,
                None,
                Some(before),
            ),
            (None, Some(after)) => Walk::between(
                Direction::Forward,
                buckets.of(after).max(span.floor),
                span.ceiling,
                Some(after),
                None,
            ),
            (Some(before), Some(after)) => {
                if after >= before {
                    return None;
                }
                Walk::between(
                    Direction::Forward,
                    buckets.of(after).max(span.floor),
                    buckets.of(before).min(span.ceiling),
                    Some(after),
                    Some(before),
                )
            }
        }
    }

    /// The walk that counts what lies after a read position.
    pub(crate) fn for_unread(after: Option<Id>, span: Span, buckets: &Buckets) -> Option<Walk> {
        let from = after.map_or(span.floor, |after| buckets.of(after).max(span.floor));
        Walk::between(Direction::Forward, from, span.ceiling, after, None)
    }

    fn next_bucket(&self, bucket: i32) -> Option<i32> {
        match self.direction {
            Direction::Backward => bucket.checked_sub(1).filter(|next| *next >= self.to),
            Direction::Forward => bucket.checked_add(1).filter(|next| *next <= self.to),
        }
    }
}

/// Walks `plan`, reading with `fetch` and handing every row to `visit`
/// until it says [`Visit::Done`] or the last bucket is read. The first read
/// asks for `first_limit` rows.
pub(crate) async fn walk<T, F, Fut, V>(
    plan: Walk,
    first_limit: u32,
    mut fetch: F,
    mut visit: V,
) -> Result<()>
where
    T: Keyed,
    F: FnMut(BucketQuery) -> Fut,
    Fut: Future<Output = Result<Vec<T>>>,
    V: FnMut(T) -> Visit,
{
    let mut want = first_limit;
    let mut bucket = plan.from;
    loop {
        let (mut after, mut before) = (plan.after, plan.before);
        loop {
            if want == 0 {
                return Ok(());
            }
            let limit = want;
            let rows = fetch(BucketQuery {
                bucket,
                after,
                before,
                direction: plan.direction,
                limit,
            })
            .await?;
            let exhausted = rows.len() < limit as usize;
            let last = rows.last().map(Keyed::key);
            for row in rows {
                match visit(row) {
                    Visit::Done => return Ok(()),
                    Visit::Want(more) => want = more,
                }
            }
            match (exhausted, last) {
                (false, Some(last)) => match plan.direction {
                    // Resume within the bucket, past the last row read.
                    Direction::Backward => before = Some(last),
                    Direction::Forward => after = Some(last),
                },
                _ => break,
            }
        }
        match plan.next_bucket(bucket) {
            Some(next) => bucket = next,
            None => return Ok(()),
        }
    }
}

/// Most rows one read of a page asks for (pages are at most 101 rows, so
/// in practice this never splits one; the tests use small slices to
/// exercise resuming within a bucket).
pub(crate) const PAGE_SLICE: u32 = 1000;

/// A page of history: up to `limit` rows (at least 1), ascending by id, and
/// whether more lie beyond it in the direction of travel. Reads `limit + 1`
/// rows, the extra one only to answer `has_more`, at most `slice` per read.
pub(crate) async fn page<T, F, Fut>(
    request: PageRequest,
    span: Span,
    buckets: &Buckets,
    slice: u32,
    fetch: F,
) -> Result<(Vec<T>, bool)>
where
    T: Keyed,
    F: FnMut(BucketQuery) -> Fut,
    Fut: Future<Output = Result<Vec<T>>>,
{
    let limit = request.limit.max(1);
    let wanted = limit.saturating_add(1);
    let Some(plan) = Walk::for_page(&request, span, buckets) else {
        return Ok((Vec::new(), false));
    };
    let slice = slice.max(1);
    let mut rows: Vec<T> = Vec::new();
    walk(plan, wanted.min(slice), fetch, |row| {
        rows.push(row);
        match wanted.saturating_sub(rows.len() as u32) {
            0 => Visit::Done,
            more => Visit::Want(more.min(slice)),
        }
    })
    .await?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    if plan.direction == Direction::Backward {
        rows.reverse();
    }
    Ok((rows, has_more))
}

/// What the unread count needs of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UnreadRow {
    pub id: Id,
    pub sender: Id,
    pub deleted: bool,
}

impl Keyed for UnreadRow {
    fn key(&self) -> Id {
        self.id
    }
}

/// Rows read per query while counting (the store's `chunk`).
pub(crate) const UNREAD_CHUNK: u32 = 500;

/// How many rows a count may scan, per unit of its cap: the scan skips the
/// reader's own and deleted messages, so it may need more rows than `cap`,
/// but not without bound.
pub(crate) const UNREAD_SCAN_FACTOR: u32 = 4;

/// Counts the messages after `after` sent by someone other than `reader`
/// and not deleted, up to `cap`.
///
/// The "N+" rule: the answer is exact below `cap`. It is `cap` when at least
/// `cap` such messages exist, and also when the scan budget (`cap` ×
/// [`UNREAD_SCAN_FACTOR`] rows) runs out first: that many messages since
/// the read position means the room has moved on a lot anyway, and a
/// client shows `cap` as "N+".
pub(crate) async fn count_unread<F, Fut>(
    after: Option<Id>,
    reader: Id,
    cap: u32,
    span: Span,
    buckets: &Buckets,
    chunk: u32,
    fetch: F,
) -> Result<u32>
where
    F: FnMut(BucketQuery) -> Fut,
    Fut: Future<Output = Result<Vec<UnreadRow>>>,
{
    if cap == 0 {
        return Ok(0);
    }
    let Some(plan) = Walk::for_unread(after, span, buckets) else {
        return Ok(0);
    };
    let budget = cap.saturating_mul(UNREAD_SCAN_FACTOR);
    let (mut counted, mut scanned) = (0u32, 0u32);
    // Reads up to one row past the budget: that row, if it exists, is what
    // tells "more than we are willing to scan" from "exactly the budget".
    let reach = budget.saturating_add(1);
    let chunk = chunk.max(1);
    walk(plan, chunk.min(reach), fetch, |row| {
        if scanned == budget {
            // Beyond the budget: this much activity reads as "N+".
            counted = cap;
            return Visit::Done;
        }
        scanned += 1;
        if row.sender != reader && !row.deleted {
            counted += 1;
        }
        if counted >= cap {
            return Visit::Done;
        }
        Visit::Want(chunk.min(reach - scanned))
    })
    .await?;
    Ok(counted.min(cap))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use chat_protocol::id::EPOCH_MS;
    use futures::executor::block_on;
    use proptest::prelude::*;

    use super::*;

    /// The in-memory model: every message by id, each with what the unread
    /// count needs. Reads answer exactly what a bucket slice query would.
    struct Model {
        buckets: Buckets,
        messages: BTreeMap<Id, UnreadRow>,
        queries: RefCell<Vec<BucketQuery>>,
    }

    impl Model {
        fn read(&self, query: BucketQuery) -> Vec<UnreadRow> {
            self.queries.borrow_mut().push(query);
            let in_slice = |row: &&UnreadRow| {
                self.buckets.of(row.id) == query.bucket
                    && query.after.is_none_or(|after| row.id > after)
                    && query.before.is_none_or(|before| row.id < before)
            };
            let rows = self.messages.values();
            let rows: Vec<UnreadRow> = match query.direction {
                Direction::Forward => rows.filter(in_slice).copied().collect(),
                Direction::Backward => rows.rev().filter(in_slice).copied().collect(),
            };
            rows.into_iter().take(query.limit as usize).collect()
        }

        fn fetch(&self) -> impl FnMut(BucketQuery) -> std::future::Ready<Result<Vec<Id>>> + '_ {
            |query| std::future::ready(Ok(self.read(query).iter().map(|row| row.id).collect()))
        }

        /// What a page should be, straight from the definition.
        fn expected_page(&self, request: PageRequest) -> (Vec<Id>, bool) {
            let limit = request.limit.max(1) as usize;
            let ids = self.messages.keys().copied().filter(|id| {
                request.after.is_none_or(|after| *id > after)
                    && request.before.is_none_or(|before| *id < before)
            });
            let ids: Vec<Id> = ids.collect();
            if request.after.is_some() {
                (ids.iter().copied().take(limit).collect(), ids.len() > limit)
            } else {
                let start = ids.len().saturating_sub(limit);
                (ids[start..].to_vec(), ids.len() > limit)
            }
        }
    }

    fn model(window_ms: u64, messages: impl IntoIterator<Item = UnreadRow>) -> Model {
        Model {
            buckets: Buckets::new(std::time::Duration::from_millis(window_ms)).unwrap(),
            messages: messages.into_iter().map(|row| (row.id, row)).collect(),
            queries: RefCell::new(Vec::new()),
        }
    }

    const ME: Id = Id(1);
    const THEM: Id = Id(2);

    fn id_in(buckets: &Buckets, bucket: i32, offset_ms: u64, sequence: u64) -> Id {
        Id::from_parts(buckets.start_ms(bucket) + offset_ms, 3, sequence)
    }

    /// One generated message: bucket (from the floor), offset within it,
    /// sequence, whether the reader sent it, whether it is deleted.
    type Generated = (i32, u64, u64, bool, bool);

    /// Sparse history over `floor..=ceiling`: the window, the floor, the
    /// ceiling and the messages.
    fn scenario() -> impl Strategy<Value = (u64, i32, i32, Vec<Generated>)> {
        (
            prop_oneof![Just(60_000u64), Just(3_600_000u64)],
            0i32..40,
            0i32..25,
        )
            .prop_flat_map(|(window, floor, span)| {
                let messages = proptest::collection::vec(
                    (
                        0..=span,
                        0..window,
                        0u64..4096,
                        any::<bool>(),
                        prop::bool::weighted(0.2),
                    ),
                    0..60,
                );
                (Just(window), Just(floor), Just(floor + span), messages)
            })
    }

    /// A cursor: none, a stored id, or an id anywhere around the span
    /// (including before the floor and after the ceiling).
    fn cursor(
        stored: &[Id],
        buckets: &Buckets,
        floor: i32,
        ceiling: i32,
        pick: (u8, usize, i32, u64),
    ) -> Option<Id> {
        let (kind, index, bucket, offset) = pick;
        match kind % 3 {
            0 => None,
            1 if !stored.is_empty() => Some(stored[index % stored.len()]),
            _ => {
                let bucket = (floor - 2 + bucket.rem_euclid(ceiling - floor + 5)).max(0);
                Some(id_in(
                    buckets,
                    bucket,
                    offset % buckets.window_ms(),
                    offset % 4096,
                ))
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn pages_match_the_model(
            (window, floor, ceiling, raw) in scenario(),
            before in (any::<u8>(), any::<usize>(), any::<i32>(), any::<u64>()),
            after in (any::<u8>(), any::<usize>(), any::<i32>(), any::<u64>()),
            limit in 0u32..12,
            slice in prop_oneof![Just(PAGE_SLICE), 1u32..4],
        ) {
            let buckets = Buckets::new(std::time::Duration::from_millis(window)).unwrap();
            let model = model(window, raw.iter().map(|&(bucket, offset, sequence, mine, deleted)| UnreadRow {
                id: id_in(&buckets, floor + bucket, offset, sequence),
                sender: if mine { ME } else { THEM },
                deleted,
            }));
            let stored: Vec<Id> = model.messages.keys().copied().collect();
            let request = PageRequest {
                before: cursor(&stored, &buckets, floor, ceiling, before),
                after: cursor(&stored, &buckets, floor, ceiling, after),
                limit,
            };
            let span = Span { floor, ceiling };
            let (ids, has_more) = block_on(page(request, span, &buckets, slice, model.fetch())).unwrap();
            prop_assert_eq!((ids, has_more), model.expected_page(request), "{:?}", request);

            // Bounded: only buckets of the span, each slice within its cursors.
            let queries = model.queries.borrow();
            for query in queries.iter() {
                prop_assert!((floor..=ceiling).contains(&query.bucket), "{:?}", query);
                prop_assert!(query.limit >= 1 && query.limit <= (limit.max(1) + 1).min(slice));
            }
            prop_assert!(queries.len() <= (ceiling - floor + 1) as usize + stored.len() + 1);
        }

        #[test]
        fn unread_counts_match_the_model(
            (window, floor, ceiling, raw) in scenario(),
            after in (any::<u8>(), any::<usize>(), any::<i32>(), any::<u64>()),
            cap in 0u32..20,
            chunk in prop_oneof![Just(UNREAD_CHUNK), 1u32..4],
        ) {
            let buckets = Buckets::new(std::time::Duration::from_millis(window)).unwrap();
            let model = model(window, raw.iter().map(|&(bucket, offset, sequence, mine, deleted)| UnreadRow {
                id: id_in(&buckets, floor + bucket, offset, sequence),
                sender: if mine { ME } else { THEM },
                deleted,
            }));
            let stored: Vec<Id> = model.messages.keys().copied().collect();
            let after = cursor(&stored, &buckets, floor, ceiling, after);
            let span = Span { floor, ceiling };
            let fetch = |query| std::future::ready(Ok(model.read(query)));
            let counted = block_on(count_unread(after, ME, cap, span, &buckets, chunk, fetch)).unwrap();

            let newer: Vec<&UnreadRow> = model
                .messages
                .values()
                .filter(|row| after.is_none_or(|after| row.id > after))
                .collect();
            let budget = (cap * UNREAD_SCAN_FACTOR) as usize;
            let theirs = |rows: &[&UnreadRow]| {
                rows.iter().filter(|row| row.sender != ME && !row.deleted).count() as u32
            };
            let expected = if newer.len() <= budget {
                theirs(&newer).min(cap)
            } else {
                // The budget ran out: "N+".
                cap
            };
            prop_assert_eq!(counted, expected);
            for query in model.queries.borrow().iter() {
                prop_assert!((floor..=ceiling).contains(&query.bucket));
                prop_assert_eq!(query.direction, Direction::Forward);
            }
        }
    }

    #[test]
    fn a_full_slice_is_followed_within_its_bucket() {
        let buckets = Buckets::new(std::time::Duration::from_secs(60)).unwrap();
        // Seven messages in one bucket, read two at a time.
        let model = model(
            60_000,
            (0..7).map(|n| UnreadRow {
                id: id_in(&buckets, 5, n * 1000, 0),
                sender: THEM,
                deleted: false,
            }),
        );
        let mut seen = Vec::new();
        let plan = Walk {
            direction: Direction::Backward,
            from: 6,
            to: 4,
            after: None,
            before: None,
        };
        block_on(walk(plan, 2, model.fetch(), |id| {
            seen.push(id);
            Visit::Want(2)
        }))
        .unwrap();
        let mut all: Vec<Id> = model.messages.keys().copied().collect();
        all.reverse();
        assert_eq!(seen, all);
        let queries = model.queries.borrow();
        let buckets_read: Vec<i32> = queries.iter().map(|query| query.bucket).collect();
        // Bucket 6 (empty), bucket 5 in slices of 2 (2, 2, 2, 1), bucket 4.
        assert_eq!(buckets_read, vec![6, 5, 5, 5, 5, 4]);
        assert_eq!(
            queries[2].before,
            Some(all[1]),
            "resumes after the last row"
        );
    }

    #[test]
    fn cursors_outside_the_span_are_clamped() {
        let buckets = Buckets::new(std::time::Duration::from_secs(60)).unwrap();
        let span = Span {
            floor: 10,
            ceiling: 12,
        };
        let far_future = Id(u64::MAX >> 1);
        let walk = Walk::for_page(
            &PageRequest {
                before: Some(far_future),
                after: None,
                limit: 5,
            },
            span,
            &buckets,
        )
        .unwrap();
        assert_eq!((walk.from, walk.to), (12, 10));
        let walk = Walk::for_page(
            &PageRequest {
                before: None,
                after: Some(Id(0)),
                limit: 5,
            },
            span,
            &buckets,
        )
        .unwrap();
        assert_eq!((walk.from, walk.to), (10, 12));
        // A cursor past the ceiling, walking forward: nothing to read.
        let late = Id::first_at(EPOCH_MS + 60_000 * 20);
        assert_eq!(
            Walk::for_page(
                &PageRequest {
                    before: None,
                    after: Some(late),
                    limit: 5
                },
                span,
                &buckets
            ),
            None
        );
        // `after` not below `before`: nothing between them.
        let id = id_in(&buckets, 11, 0, 0);
        assert_eq!(
            Walk::for_page(
                &PageRequest {
                    before: Some(id),
                    after: Some(id),
                    limit: 5
                },
                span,
                &buckets
            ),
            None
        );
    }

    #[test]
    fn a_zero_cap_reads_nothing() {
        let buckets = Buckets::default();
        let model = model(buckets.window_ms(), []);
        let span = Span {
            floor: 0,
            ceiling: 3,
        };
        let fetch = |query| std::future::ready(Ok(model.read(query)));
        assert_eq!(
            block_on(count_unread(
                None,
                ME,
                0,
                span,
                &buckets,
                UNREAD_CHUNK,
                fetch
            ))
            .unwrap(),
            0
        );
        assert!(model.queries.borrow().is_empty());
    }
}
