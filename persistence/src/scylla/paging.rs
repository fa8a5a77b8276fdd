//! Walking a room's buckets: the history pages, the last message and the
//! unread count, written over an abstract `list` (the bucket index) and
//! `fetch` (a slice of one bucket) so that the walk itself is tested
//! against an in-memory model (see the property tests below) rather than a
//! server.
//!
//! A walk visits only the buckets the room's index lists as holding
//! messages, newest first when travelling back (no cursor, or `before`) and
//! oldest first when travelling forward (`after`). It reads the index in
//! chunks of [`INDEX_CHUNK`] buckets, and within a bucket reads slices of at
//! most the number of rows it still wants; a slice that comes back full is
//! followed by another from the last row on (keyset paging), a short one
//! means the bucket is done.
//!
//! The cost of a call is therefore bounded by what it returns, not by the
//! room's age: every listed bucket holds at least one message, so a page of
//! `n` rows reads at most `n + 2` buckets (the two at the cursors may hold
//! nothing inside them) plus one index read per [`INDEX_CHUNK`] buckets. A
//! room with one message from a year ago costs two queries for its last
//! message, not one per bucket of the year. Buckets are bounded above by
//! the bucket of "now" (plus a slack), whatever the cursors say.

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

/// One read of the bucket index: the buckets holding messages with
/// `low <= bucket <= high`, in `direction`, at most `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexQuery {
    pub low: i32,
    pub high: i32,
    pub direction: Direction,
    pub limit: u32,
}

/// Buckets read from the index per query. A page (at most 101 rows) rarely
/// needs a second chunk; an unread count over a long silence might.
pub(crate) const INDEX_CHUNK: u32 = 32;

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

/// The buckets a walk may visit, both inclusive: from `floor` to the bucket
/// of now (`ceiling`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub floor: i32,
    pub ceiling: i32,
}

impl Span {
    /// Every bucket up to the one of `now_ms` (clock slack included): the
    /// index lists only buckets that hold messages, so no lower bound is
    /// needed to keep a walk short.
    pub(crate) fn until(now_ms: u64, buckets: &Buckets) -> Span {
        Span {
            floor: 0,
            ceiling: buckets.ceiling(now_ms),
        }
    }
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

    /// The lowest and highest bucket of the walk.
    fn range(&self) -> (i32, i32) {
        match self.direction {
            Direction::Backward => (self.to, self.from),
            Direction::Forward => (self.from, self.to),
        }
    }
}

/// Walks `plan` over the buckets `list` names, reading each with `fetch`
/// and handing every row to `visit` until it says [`Visit::Done`] or the
/// last listed bucket is read. The first read asks for `first_limit` rows.
pub(crate) async fn walk<T, L, LFut, F, Fut, V>(
    plan: Walk,
    first_limit: u32,
    mut list: L,
    mut fetch: F,
    mut visit: V,
) -> Result<()>
where
    T: Keyed,
    L: FnMut(IndexQuery) -> LFut,
    LFut: Future<Output = Result<Vec<i32>>>,
    F: FnMut(BucketQuery) -> Fut,
    Fut: Future<Output = Result<Vec<T>>>,
    V: FnMut(T) -> Visit,
{
    let mut want = first_limit;
    let (mut low, mut high) = plan.range();
    loop {
        if want == 0 {
            return Ok(());
        }
        let listed = list(IndexQuery {
            low,
            high,
            direction: plan.direction,
            limit: INDEX_CHUNK,
        })
        .await?;
        let more_listed = listed.len() >= INDEX_CHUNK as usize;
        let last_listed = listed.last().copied();
        // An answer outside the range asked for would be a broken index;
        // it is ignored rather than allowed to widen the walk.
        for bucket in listed.into_iter().filter(|b| (low..=high).contains(b)) {
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
        }
        // A full chunk may have a successor: the next chunk starts past it.
        let next = match (more_listed, last_listed, plan.direction) {
            (true, Some(last), Direction::Backward) => last.checked_sub(1).map(|h| (low, h)),
            (true, Some(last), Direction::Forward) => last.checked_add(1).map(|l| (l, high)),
            _ => None,
        };
        match next {
            Some((next_low, next_high)) if next_low <= next_high => {
                (low, high) = (next_low, next_high);
            }
            _ => return Ok(()),
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
pub(crate) async fn page<T, L, LFut, F, Fut>(
    request: PageRequest,
    span: Span,
    buckets: &Buckets,
    slice: u32,
    list: L,
    fetch: F,
) -> Result<(Vec<T>, bool)>
where
    T: Keyed,
    L: FnMut(IndexQuery) -> LFut,
    LFut: Future<Output = Result<Vec<i32>>>,
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
    walk(plan, wanted.min(slice), list, fetch, |row| {
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

/// The newest row of the room: the newest listed bucket's first row (one
/// index read and one single-row read, unless that bucket turns out empty).
pub(crate) async fn newest<T, L, LFut, F, Fut>(
    span: Span,
    buckets: &Buckets,
    list: L,
    fetch: F,
) -> Result<Option<T>>
where
    T: Keyed,
    L: FnMut(IndexQuery) -> LFut,
    LFut: Future<Output = Result<Vec<i32>>>,
    F: FnMut(BucketQuery) -> Fut,
    Fut: Future<Output = Result<Vec<T>>>,
{
    let request = PageRequest {
        limit: 1,
        ..PageRequest::default()
    };
    let Some(plan) = Walk::for_page(&request, span, buckets) else {
        return Ok(None);
    };
    let mut found = None;
    walk(plan, 1, list, fetch, |row| {
        found = Some(row);
        Visit::Done
    })
    .await?;
    Ok(found)
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
#[allow(clippy::too_many_arguments)] // the count's inputs, then its two sources
pub(crate) async fn count_unread<L, LFut, F, Fut>(
    after: Option<Id>,
    reader: Id,
    cap: u32,
    span: Span,
    buckets: &Buckets,
    chunk: u32,
    list: L,
    fetch: F,
) -> Result<u32>
where
    L: FnMut(IndexQuery) -> LFut,
    LFut: Future<Output = Result<Vec<i32>>>,
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
    walk(plan, chunk.min(reach), list, fetch, |row| {
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
    use std::collections::{BTreeMap, BTreeSet};

    use chat_protocol::id::EPOCH_MS;
    use futures::executor::block_on;
    use proptest::prelude::*;

    use super::*;

    /// The in-memory model: every message by id, each with what the unread
    /// count needs, and the bucket index: every bucket holding a message,
    /// plus "phantoms" (listed but empty: an index row written before
    /// inserts that then failed). Reads answer exactly what an index or a
    /// bucket slice query would, and are recorded.
    struct Model {
        buckets: Buckets,
        messages: BTreeMap<Id, UnreadRow>,
        phantoms: BTreeSet<i32>,
        queries: RefCell<Vec<BucketQuery>>,
        /// Rows answered by each entry of `queries`.
        answered: RefCell<Vec<usize>>,
        index_queries: RefCell<Vec<IndexQuery>>,
    }

    impl Model {
        fn with_phantoms(mut self, phantoms: impl IntoIterator<Item = i32>) -> Model {
            self.phantoms.extend(phantoms);
            self
        }

        /// The buckets the index lists.
        fn index(&self) -> BTreeSet<i32> {
            let mut index: BTreeSet<i32> = self
                .messages
                .keys()
                .map(|id| self.buckets.of(*id))
                .collect();
            index.extend(&self.phantoms);
            index
        }

        fn list_buckets(&self, query: IndexQuery) -> Vec<i32> {
            self.index_queries.borrow_mut().push(query);
            let index = self.index();
            let in_range = index.range(query.low..=query.high).copied();
            let listed: Vec<i32> = match query.direction {
                Direction::Forward => in_range.collect(),
                Direction::Backward => in_range.rev().collect(),
            };
            listed.into_iter().take(query.limit as usize).collect()
        }

        fn list(&self) -> impl FnMut(IndexQuery) -> std::future::Ready<Result<Vec<i32>>> + '_ {
            |query| std::future::ready(Ok(self.list_buckets(query)))
        }

        fn read(&self, query: BucketQuery) -> Vec<UnreadRow> {
            let rows = self.read_unrecorded(query);
            self.queries.borrow_mut().push(query);
            self.answered.borrow_mut().push(rows.len());
            rows
        }

        fn read_unrecorded(&self, query: BucketQuery) -> Vec<UnreadRow> {
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
            phantoms: BTreeSet::new(),
            queries: RefCell::new(Vec::new()),
            answered: RefCell::new(Vec::new()),
            index_queries: RefCell::new(Vec::new()),
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
    /// ceiling, the messages and the phantom buckets (offsets from the floor).
    fn scenario() -> impl Strategy<Value = (u64, i32, i32, Vec<Generated>, Vec<i32>)> {
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
                let phantoms = proptest::collection::vec(0..=span, 0..3);
                (
                    Just(window),
                    Just(floor),
                    Just(floor + span),
                    messages,
                    phantoms,
                )
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
            (window, floor, ceiling, raw, phantoms) in scenario(),
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
            })).with_phantoms(phantoms.iter().map(|offset| floor + offset));
            let stored: Vec<Id> = model.messages.keys().copied().collect();
            let request = PageRequest {
                before: cursor(&stored, &buckets, floor, ceiling, before),
                after: cursor(&stored, &buckets, floor, ceiling, after),
                limit,
            };
            let span = Span { floor, ceiling };
            let (ids, has_more) =
                block_on(page(request, span, &buckets, slice, model.list(), model.fetch())).unwrap();
            prop_assert_eq!((ids, has_more), model.expected_page(request), "{:?}", request);

            // Bounded: only listed buckets of the span, each slice within
            // its cursors, and (with the real slice size) at most one read
            // per row wanted plus the two cursor buckets and the phantoms.
            let queries = model.queries.borrow();
            let index = model.index();
            for query in queries.iter() {
                prop_assert!((floor..=ceiling).contains(&query.bucket), "{:?}", query);
                prop_assert!(index.contains(&query.bucket), "{:?} is listed", query);
                prop_assert!(query.limit >= 1 && query.limit <= (limit.max(1) + 1).min(slice));
            }
            if slice == PAGE_SLICE {
                let wanted = limit.max(1) as usize + 1;
                let empty = model.answered.borrow().iter().filter(|rows| **rows == 0).count();
                prop_assert!(empty <= 2 + model.phantoms.len(), "{} empty reads", empty);
                prop_assert!(queries.len() <= wanted + 2 + model.phantoms.len());
            }
            // Fewer than INDEX_CHUNK buckets here: the index is read once.
            prop_assert!(model.index_queries.borrow().len() <= 1);
        }

        #[test]
        fn unread_counts_match_the_model(
            (window, floor, ceiling, raw, phantoms) in scenario(),
            after in (any::<u8>(), any::<usize>(), any::<i32>(), any::<u64>()),
            cap in 0u32..20,
            chunk in prop_oneof![Just(UNREAD_CHUNK), 1u32..4],
        ) {
            let buckets = Buckets::new(std::time::Duration::from_millis(window)).unwrap();
            let model = model(window, raw.iter().map(|&(bucket, offset, sequence, mine, deleted)| UnreadRow {
                id: id_in(&buckets, floor + bucket, offset, sequence),
                sender: if mine { ME } else { THEM },
                deleted,
            })).with_phantoms(phantoms.iter().map(|offset| floor + offset));
            let stored: Vec<Id> = model.messages.keys().copied().collect();
            let after = cursor(&stored, &buckets, floor, ceiling, after);
            let span = Span { floor, ceiling };
            let fetch = |query| std::future::ready(Ok(model.read(query)));
            let counted =
                block_on(count_unread(after, ME, cap, span, &buckets, chunk, model.list(), fetch))
                    .unwrap();

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
            let index = model.index();
            for query in model.queries.borrow().iter() {
                prop_assert!((floor..=ceiling).contains(&query.bucket));
                prop_assert!(index.contains(&query.bucket), "{:?} is listed", query);
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
        block_on(walk(plan, 2, model.list(), model.fetch(), |id| {
            seen.push(id);
            Visit::Want(2)
        }))
        .unwrap();
        let mut all: Vec<Id> = model.messages.keys().copied().collect();
        all.reverse();
        assert_eq!(seen, all);
        let queries = model.queries.borrow();
        let buckets_read: Vec<i32> = queries.iter().map(|query| query.bucket).collect();
        // Only bucket 5 is listed: read in slices of 2 (2, 2, 2, 1);
        // buckets 6 and 4 hold nothing and are never read.
        assert_eq!(buckets_read, vec![5, 5, 5, 5]);
        assert_eq!(
            queries[1].before,
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
                model.list(),
                fetch
            ))
            .unwrap(),
            0
        );
        assert!(model.queries.borrow().is_empty());
        assert!(model.index_queries.borrow().is_empty());
    }

    /// Every query one room's summary issues (unread count, then last
    /// message) against `model`: index reads plus bucket reads.
    fn summary_queries(model: &Model, span: Span, last_read: Option<Id>) -> usize {
        let fetch = |query| std::future::ready(Ok(model.read(query)));
        block_on(count_unread(
            last_read,
            ME,
            1000,
            span,
            &model.buckets,
            UNREAD_CHUNK,
            model.list(),
            fetch,
        ))
        .unwrap();
        let newest: Option<Id> =
            block_on(newest(span, &model.buckets, model.list(), model.fetch())).unwrap();
        assert_eq!(newest, model.messages.keys().next_back().copied());
        model.queries.borrow().len() + model.index_queries.borrow().len()
    }

    #[test]
    fn a_connect_of_a_user_in_100_rooms_is_bounded() {
        // Ten-day buckets; "now" is bucket 100 (about 2.7 years in).
        let buckets = Buckets::default();
        let span = Span::until(buckets.start_ms(100), &buckets);
        let mut total = 0;
        for room in 0..100u64 {
            let model = match room % 3 {
                // One message from two years ago, never read.
                0 => model(
                    buckets.window_ms(),
                    [UnreadRow {
                        id: id_in(&buckets, 27, room, 0),
                        sender: THEM,
                        deleted: false,
                    }],
                ),
                // A message every 20 days for two years, all read but two.
                1 => model(
                    buckets.window_ms(),
                    (0..37).map(|n| UnreadRow {
                        id: id_in(&buckets, 27 + 2 * n, room, 0),
                        sender: THEM,
                        deleted: false,
                    }),
                ),
                // A busy room: 300 messages in the current bucket, 10 unread.
                _ => model(
                    buckets.window_ms(),
                    (0..300).map(|n| UnreadRow {
                        id: id_in(&buckets, 100, n * 1000, room),
                        sender: if n % 2 == 0 { ME } else { THEM },
                        deleted: false,
                    }),
                ),
            };
            let ids: Vec<Id> = model.messages.keys().copied().collect();
            let last_read = match room % 3 {
                0 => None,
                1 => Some(ids[ids.len() - 3]),
                _ => Some(ids[ids.len() - 21]),
            };
            let queries = summary_queries(&model, span, last_read);
            // Unread: one index read and the listed buckets from the read
            // position on (here at most three); last message: one index
            // read and one bucket.
            assert!(queries <= 6, "room {room}: {queries} queries");
            total += queries;
        }
        // Walking every bucket of the rooms' lives, as before the index,
        // would cost up to 74 reads per never-read room (its 74 buckets
        // forward, then back) instead.
        assert!(total <= 100 * 6, "{total} queries for 100 rooms");
    }

    #[test]
    fn the_index_is_read_in_chunks_as_far_as_the_walk_goes() {
        let buckets = Buckets::new(std::time::Duration::from_secs(60)).unwrap();
        // One message in each of 100 buckets: a count from the start reads
        // the index in four chunks (32, 32, 32, 4) and each bucket once.
        let model = model(
            60_000,
            (0..100).map(|bucket| UnreadRow {
                id: id_in(&buckets, bucket, 5, 0),
                sender: THEM,
                deleted: false,
            }),
        );
        let span = Span::until(buckets.start_ms(100), &buckets);
        let fetch = |query| std::future::ready(Ok(model.read(query)));
        let counted = block_on(count_unread(
            None,
            ME,
            1000,
            span,
            &buckets,
            UNREAD_CHUNK,
            model.list(),
            fetch,
        ))
        .unwrap();
        assert_eq!(counted, 100);
        let index_queries = model.index_queries.borrow();
        let chunks: Vec<(i32, i32)> = index_queries.iter().map(|q| (q.low, q.high)).collect();
        assert_eq!(chunks, vec![(0, 101), (32, 101), (64, 101), (96, 101)]);
        assert_eq!(model.queries.borrow().len(), 100);
        drop(index_queries);

        // A page of 10 from the newest end reads one chunk and 11 buckets.
        model.queries.borrow_mut().clear();
        model.index_queries.borrow_mut().clear();
        let request = PageRequest {
            limit: 10,
            ..PageRequest::default()
        };
        let (ids, has_more) = block_on(page(
            request,
            span,
            &buckets,
            PAGE_SLICE,
            model.list(),
            model.fetch(),
        ))
        .unwrap();
        assert_eq!(ids.len(), 10);
        assert!(has_more);
        assert_eq!(model.index_queries.borrow().len(), 1);
        assert_eq!(model.queries.borrow().len(), 11);
    }
}
