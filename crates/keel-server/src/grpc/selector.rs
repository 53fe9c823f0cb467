//! Which keys a scan visits: a `KeySelector` (prefix, range or everything) as the
//! `[start, end)` bounds `Txn::scan` takes.

use bytes::Bytes;
use keel_proto::v1::{key_selector::Selector, KeySelector};
use keel_storage::range::prefix_successor;

/// Scan bounds in user keys; None = open on that side.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bounds {
    /// First key included.
    pub start: Option<Bytes>,
    /// First key excluded.
    pub end: Option<Bytes>,
}

impl Bounds {
    /// The bounds `sel` names (an empty prefix or empty range ends are open).
    pub fn of(sel: Option<&KeySelector>) -> Bounds {
        match sel.and_then(|s| s.selector.as_ref()) {
            None => Bounds::default(),
            Some(Selector::Prefix(p)) if p.is_empty() => Bounds::default(),
            Some(Selector::Prefix(p)) => Bounds {
                start: Some(p.clone()),
                end: prefix_successor(p).map(Bytes::from),
            },
            Some(Selector::Range(r)) => Bounds {
                start: (!r.start.is_empty()).then(|| r.start.clone()),
                end: (!r.end.is_empty()).then(|| r.end.clone()),
            },
        }
    }

    /// True when nothing can lie inside (start at or past end).
    pub fn is_empty(&self) -> bool {
        matches!((&self.start, &self.end), (Some(s), Some(e)) if s >= e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_proto::v1::KeyRange;

    fn sel(s: Selector) -> KeySelector {
        KeySelector { selector: Some(s) }
    }

    #[test]
    fn prefixes_and_ranges() {
        let b = Bounds::of(Some(&sel(Selector::Prefix(Bytes::from_static(b"ab")))));
        assert_eq!(b.start.as_deref(), Some(&b"ab"[..]));
        assert_eq!(b.end.as_deref(), Some(&b"ac"[..]));
        let b = Bounds::of(Some(&sel(Selector::Prefix(Bytes::from_static(b"\xff")))));
        assert_eq!(b.end, None, "no key above every 0xff... prefix");
        assert_eq!(Bounds::of(None), Bounds::default());
        let r = Bounds::of(Some(&sel(Selector::Range(KeyRange {
            start: Bytes::new(),
            end: Bytes::from_static(b"m"),
        }))));
        assert_eq!((r.start, r.end.as_deref()), (None, Some(&b"m"[..])));
        let empty = Bounds::of(Some(&sel(Selector::Range(KeyRange {
            start: Bytes::from_static(b"z"),
            end: Bytes::from_static(b"a"),
        }))));
        assert!(empty.is_empty());
    }
}
