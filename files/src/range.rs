//! The `Range` request header (RFC 9110 §14), for one range of bytes.
//! Several ranges in one request are answered with the whole file, which
//! the RFC allows.

use std::ops::Range;

/// What to send for a request's `Range` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requested {
    /// The whole file (200).
    Whole,
    /// These bytes (206).
    Part(Range<u64>),
    /// Nothing of the file lies in the range (416).
    Unsatisfiable,
}

/// What `header` (the `Range` value, if any) asks of a file of `size` bytes.
/// A header that cannot be parsed is ignored, as the RFC asks.
pub fn requested(header: Option<&str>, size: u64) -> Requested {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Requested::Whole;
    };
    if spec.contains(',') {
        return Requested::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Requested::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let range = match (first.parse::<u64>(), last.parse::<u64>()) {
        // bytes=-N: the last N bytes.
        (Err(_), Ok(suffix)) if first.is_empty() => {
            if suffix == 0 || size == 0 {
                return Requested::Unsatisfiable;
            }
            size.saturating_sub(suffix)..size
        }
        // bytes=A-: from A to the end.
        (Ok(start), Err(_)) if last.is_empty() => start..size,
        (Ok(start), Ok(end)) if end >= start => start..(end.saturating_add(1)).min(size),
        _ => return Requested::Whole,
    };
    if range.start >= size {
        return Requested::Unsatisfiable;
    }
    // Even every byte is answered as the part asked for (206 with its
    // `Content-Range`), so a client resuming at 0 is told what it got.
    Requested::Part(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(requested(None, 10), Requested::Whole);
        assert_eq!(requested(Some("bytes=2-4"), 10), Requested::Part(2..5));
        assert_eq!(requested(Some("bytes=5-"), 10), Requested::Part(5..10));
        assert_eq!(requested(Some("bytes=-3"), 10), Requested::Part(7..10));
        assert_eq!(requested(Some("bytes=8-100"), 10), Requested::Part(8..10));
        assert_eq!(requested(Some("bytes=0-9"), 10), Requested::Part(0..10));
        assert_eq!(requested(Some("bytes=-50"), 10), Requested::Part(0..10));
        assert_eq!(requested(Some("bytes=10-"), 10), Requested::Unsatisfiable);
        assert_eq!(requested(Some("bytes=-0"), 10), Requested::Unsatisfiable);
        assert_eq!(requested(Some("bytes=4-2"), 10), Requested::Whole);
        assert_eq!(requested(Some("bytes=0-1,4-5"), 10), Requested::Whole);
        assert_eq!(requested(Some("items=0-1"), 10), Requested::Whole);
        assert_eq!(requested(Some("bytes=x-y"), 10), Requested::Whole);
    }
}
