//! The memory engine's key order: a B-tree of keyed items whose nodes hold up to
//! `CAP` items, are searched by bisection, and split at a run of inserts.
//!
//! std's `BTreeSet` holds 11 items per node and searches each node linearly. The items
//! here are pointers to entries, so every comparison loads another entry's key, usually
//! a cache miss: at a few million keys a removal from a list's tail made ~52
//! comparisons (~2,100 instructions, a quarter of a pipelined RPOP). With 29 items per
//! node, bisection makes about five comparisons per level over fewer levels; as each
//! probe waits on the last comparison's miss, where a linear search's loads overlap,
//! the search asks for its next probes' keys ahead (see `Node::search`). An inner node
//! keeps its items' keys in brief beside its children (see `Brief`): its search loads
//! no entry but at a tie.
//!
//! Its nodes split in the middle, which leaves keys inserted in order (pushes to a list,
//! increasing ids) in half-full nodes; here a node that a run of inserts fills splits
//! at the run (see `Node::split_insert`), leaving full nodes behind it.
//!
//! Inserts and removals descend in a loop and fix splits and refills up the path they
//! noted. While they keep going to one leaf (a list pushed or popped at one end, keys
//! in increasing order), the tree keeps a finger on that leaf (see [`Finger`]) and
//! goes straight to it: a pipelined RPOP spent 1,224 of its 8,460 instructions in the
//! four levels' searches of a tail removal. It keeps two, for a queue: a list pushed
//! at one end and popped at the other goes to two leaves in turn.
//!
//! Every inner node also counts the items under each of its children, so that a key's
//! position and the item at a position are found in one descent ([`OrderTree::rank`],
//! [`OrderTree::nth`]): SPOP and SRANDMEMBER of a set of 100k members walked to a
//! random position, ~50k items per call.
//!
//! Only what the index needs is here: insert, remove by key, walks over a range in
//! either direction that stop when the visitor says so, and positions.

use std::cmp::Ordering;
use std::ops::Bound;
use std::ptr::NonNull;

use arrayvec::ArrayVec;

use crate::cache_hint::prefetch_line;
use crate::key_order::{cmp_keys, word};
use crate::Direction;

/// Most items in a node: with the kids pointer, the length and the insert hints a node
/// is 256 bytes.
const CAP: usize = 29;
/// Fewest items a removal leaves in a node other than the root: one that would hold
/// fewer borrows from a sibling or merges with one (two such nodes and their separator
/// fit in one). A split at a run may leave a node with fewer, down to one item.
const MIN: usize = 12;
const _: () = assert!(2 * MIN <= CAP);
/// Inserts in a row, each at or just after the one before, that make a full node split
/// at the new item rather than in the middle (two: by chance about one in 200).
const RUN: u8 = 2;

/// What the tree orders: an item and the key it sorts by (compared as bytes).
pub trait Keyed {
    /// The item's key.
    fn key(&self) -> &[u8];

    /// Where the item keeps its key's first bytes, to prefetch (a hint: never read).
    fn key_line(&self) -> *const u8 {
        self.key().as_ptr()
    }
}

/// One node: its items in key order and, unless it is a leaf, one more child than items
/// (child `i` holds the keys between items `i - 1` and `i`).
struct Node<T> {
    items: ArrayVec<T, CAP>,
    kids: Option<Box<Kids<T>>>,
    /// Where the last insert into this node went ([`NO_INSERT`] when not known).
    last: u8,
    /// How many inserts in a row went next to the one before: at its place (a run of
    /// descending keys) or just after it (ascending, or two runs growing apart from
    /// one gap, as a list pushed at its tail beside one pushed at its head).
    near: u8,
    /// Whether the last of those went just after the one before (ascending).
    rising: bool,
    /// Whether the last two of those went opposite ways: two runs growing apart from
    /// one gap, in turn.
    turning: bool,
}

/// `Node::last` when no insert into the node is known.
const NO_INSERT: u8 = u8::MAX;
const _: () = assert!(CAP < NO_INSERT as usize);

/// An inner node's children, and its items' keys in brief for its search.
struct Kids<T> {
    nodes: ArrayVec<Box<Node<T>>, { CAP + 1 }>,
    brief: Brief,
    /// How many items each child's subtree holds (entries past the children's count
    /// mean nothing). Kept by every change: a descent's inserts and removals count
    /// along their path, splits, merges and borrows count the children they change.
    sizes: [usize; CAP + 1],
}

impl<T> Kids<T> {
    /// Children whose parent's brief is yet to be taken ([`Node::rebrief`]), counted.
    fn of(nodes: ArrayVec<Box<Node<T>>, { CAP + 1 }>) -> Box<Self> {
        let mut kids = Box::new(Kids {
            nodes,
            brief: Brief::EMPTY,
            sizes: [0; CAP + 1],
        });
        kids.recount();
        kids
    }

    /// Counts every child's subtree again.
    fn recount(&mut self) {
        for (size, node) in self.sizes.iter_mut().zip(self.nodes.iter()) {
            *size = node.total();
        }
    }

    /// Counts child `i`'s subtree again.
    fn recount_at(&mut self, i: usize) {
        if let (Some(size), Some(node)) = (self.sizes.get_mut(i), self.nodes.get(i)) {
            *size = node.total();
        }
    }

    /// The counts of the children before child `i`, summed.
    fn below(&self, i: usize) -> usize {
        self.sizes[..i.min(self.nodes.len())].iter().sum()
    }
}

impl<T> std::ops::Deref for Kids<T> {
    type Target = ArrayVec<Box<Node<T>>, { CAP + 1 }>;
    fn deref(&self) -> &Self::Target {
        &self.nodes
    }
}

impl<T> std::ops::DerefMut for Kids<T> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.nodes
    }
}

// The children, the brief and the counts fill a 768-byte allocation. Inner nodes are
// about one in fifteen, so the counts cost under a byte per key.
const _: () = assert!(std::mem::size_of::<Kids<usize>>() <= 768);

/// Longest prefix a [`Brief`] holds.
const PREFIX: usize = 24;

/// An inner node's items' keys as its search needs them, held beside its children so
/// that the search loads no item's key but at a tie: the bytes they all start with (up
/// to [`PREFIX`]) and, for each, the next eight bytes as a big-endian word (zero-padded),
/// its head.
///
/// Each comparison of a search loads another entry's key: ZADD -P 16 spent a quarter of
/// its cycles in the order's searches, most of them waiting on those loads, and ~60
/// instructions per comparison. Inner nodes are about one in fifteen, so their briefs
/// cost about a byte per key; leaves, where the bytes would be most of the tree, still
/// load keys. A brief is taken afresh whenever its node's items change, which splits,
/// merges, borrows and removed separators do, about once per ten inserts or removals.
#[derive(Clone, PartialEq, Debug)]
struct Brief {
    heads: [u64; CAP],
    prefix: [u8; PREFIX],
    prefix_len: u8,
}

impl Brief {
    const EMPTY: Brief = Brief {
        heads: [0; CAP],
        prefix: [0; PREFIX],
        prefix_len: 0,
    };

    /// The brief of `items` (in key order).
    fn of<T: Keyed>(items: &[T]) -> Brief {
        let mut brief = Brief::EMPTY;
        let (Some(first), Some(last)) = (items.first(), items.last()) else {
            return brief;
        };
        // Keys between two that share a prefix share it too.
        let (a, b) = (first.key(), last.key());
        let shared = a
            .iter()
            .zip(b)
            .take_while(|(x, y)| x == y)
            .count()
            .min(PREFIX);
        brief.prefix[..shared].copy_from_slice(&a[..shared]);
        brief.prefix_len = shared as u8;
        for (head, item) in brief.heads.iter_mut().zip(items) {
            *head = head_at(item.key(), shared);
        }
        brief
    }

    /// [`Node::search`] in an inner node whose items are `items`.
    #[inline]
    fn search<T: Keyed>(&self, items: &[T], key: &[u8]) -> Result<usize, usize> {
        let n = items.len().min(CAP);
        let p = usize::from(self.prefix_len).min(PREFIX);
        // Against the prefix every item starts with: a key that does not start with it
        // is below or above them all.
        match cmp_keys(&key[..p.min(key.len())], &self.prefix[..p]) {
            Ordering::Less => return Err(0),
            Ordering::Greater => return Err(n),
            // Shorter than the prefix and a prefix of it: below every item.
            Ordering::Equal if key.len() < p => return Err(0),
            Ordering::Equal => {}
        }
        let head = head_at(key, p);
        let heads = &self.heads[..n];
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let order = match heads[mid].cmp(&head) {
                // Heads that differ order their keys; equal ones leave it to the keys.
                Ordering::Equal => cmp_keys(items[mid].key(), key),
                order => order,
            };
            match order {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }
}

/// The eight bytes of `key` from `at` as a big-endian word, zero-padded past its end:
/// ordered as the keys are where they differ in those bytes.
#[inline]
fn head_at(key: &[u8], at: usize) -> u64 {
    if key.len() >= at + 8 {
        return word(key, at);
    }
    let mut w = [0u8; 8];
    let tail = key.get(at..).unwrap_or_default();
    w[..tail.len()].copy_from_slice(tail);
    u64::from_be_bytes(w)
}

// A node of pointer-sized items fills a 256-byte allocation.
const _: () = assert!(std::mem::size_of::<Node<usize>>() == 256);

/// Fingers the tree keeps: two, so that a queue (pushes at one end of a list, pops at
/// the other, in turn) has one for each end.
const FINGERS: usize = 2;
/// Descents in a row to other leaves after which a finger is given up: keys at random
/// places miss it, and trying it costs two loads of its bounds per insert or removal.
const MISSES: u8 = 4;
/// Most inner nodes above a leaf with a finger (a tree of 29-item nodes is far
/// shallower; a deeper one keeps no fingers).
const MAX_DEPTH: usize = 16;

/// What [`Node::refill`] did to a child left short by a removal.
enum Refill {
    /// Nothing: the child holds enough items.
    Enough,
    /// Moved items from a sibling through this node into the child.
    Borrowed,
    /// Merged the child with a sibling, taking an item out of this node.
    Merged,
}

/// A leaf that inserts or removals keep going to, and what bounds it, kept so that the
/// next one at the same place (a list pushed or popped at one end, keys in increasing
/// order) skips the descent.
///
/// Its pointers are into the tree's nodes and good until an inner node above the leaf
/// changes: items moved in or out of one by a split, a merge or a borrow between inner
/// nodes. Such a change reshapes the subtree under the highest node it reaches, and
/// the tree drops the fingers on leaves in that subtree (see [`Slot::ancestors`]).
struct Finger<T> {
    leaf: NonNull<Node<T>>,
    /// The leaf's parent and the leaf's place among its children (None: the root).
    parent: Option<(NonNull<Node<T>>, usize)>,
    /// The items around the leaf: every key in it is above `lo` and below `hi` (None:
    /// no item on that side).
    lo: Option<NonNull<T>>,
    hi: Option<NonNull<T>>,
    /// The node that holds `hi`.
    hi_in: Option<NonNull<Node<T>>>,
}

impl<T> Clone for Finger<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Finger<T> {}

/// One of the tree's fingers and what the tree knows of its leaf.
struct Slot<T> {
    /// The leaf it is for (compared, never followed: it may be gone); None: a free slot.
    leaf: Option<NonNull<Node<T>>>,
    /// The finger on `leaf`, while good; None after an inner node above it changed,
    /// until a descent reaches the leaf again.
    finger: Option<Finger<T>>,
    /// The inner nodes above the finger's leaf, root first, and the child each went to:
    /// a change that reshapes the subtree under a node at some depth leaves the finger
    /// good unless its ancestor at that depth is that node. Followed only while the
    /// finger is good, to count an insert or removal through it.
    ancestors: ArrayVec<(NonNull<Node<T>>, usize), MAX_DEPTH>,
    /// A descent to the leaf split or merged it: the keys that went there may now be
    /// in the next leaf, so the next descent that reaches no slot's leaf takes this
    /// slot over.
    moved: bool,
    /// Descents since the leaf was last reached (through the finger or not) that
    /// went elsewhere.
    misses: u8,
}

impl<T> Slot<T> {
    const FREE: Self = Slot {
        leaf: None,
        finger: None,
        ancestors: ArrayVec::new_const(),
        moved: false,
        misses: 0,
    };
}

/// Where a key is against a [`Finger`]'s leaf.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Between the leaf's bounds: in the leaf or nowhere.
    Inside,
    /// The leaf's upper bound itself.
    Bound,
}

impl<T: Keyed> Finger<T> {
    /// Where `key` is against the leaf (None: elsewhere in the tree).
    ///
    /// # Safety
    /// The finger must be good (see [`Finger`]).
    unsafe fn place(&self, key: &[u8]) -> Option<Place> {
        // SAFETY: the caller's; the bounds point at items of live inner nodes.
        let (lo, hi) = unsafe {
            (
                self.lo.map(|p| p.as_ref().key()),
                self.hi.map(|p| p.as_ref().key()),
            )
        };
        if lo.is_some_and(|lo| cmp_keys(lo, key) != Ordering::Less) {
            return None;
        }
        match hi.map(|hi| cmp_keys(key, hi)) {
            None | Some(Ordering::Less) => Some(Place::Inside),
            Some(Ordering::Equal) => Some(Place::Bound),
            Some(Ordering::Greater) => None,
        }
    }
}

/// A descent's steps: each inner node passed and the child it went to.
type Path<T> = Vec<(NonNull<Node<T>>, usize)>;

/// Counts an item `added` to (or removed from) the subtree of each child on `steps`.
fn count_path<T>(steps: &[(NonNull<Node<T>>, usize)], added: bool) {
    for &(node, at) in steps {
        // SAFETY: the caller's steps are inner nodes of a tree it holds by `&mut`, each
        // reached by the descent (or by a good finger's) and unchanged since, and no
        // other reference to them is alive.
        if let Some(kids) = unsafe { &mut *node.as_ptr() }.kids.as_deref_mut() {
            if let Some(size) = kids.sizes.get_mut(at) {
                *size = if added {
                    *size + 1
                } else {
                    size.saturating_sub(1)
                };
            }
        }
    }
}

/// What an insert into a node left for its parent to do.
enum Ins<T> {
    /// Inserted.
    Done,
    /// Inserted, and the node split: this separator and right half go into its parent.
    Split(T, Box<Node<T>>),
}

impl<T> Node<T> {
    /// How many items this node's subtree holds.
    fn total(&self) -> usize {
        self.items.len() + self.kids.as_deref().map_or(0, |k| k.below(k.nodes.len()))
    }
}

impl<T: Keyed> Node<T> {
    fn leaf() -> Box<Self> {
        Node::boxed(ArrayVec::new(), None)
    }

    fn boxed(items: ArrayVec<T, CAP>, kids: Option<Box<Kids<T>>>) -> Box<Self> {
        let mut node = Box::new(Node {
            items,
            kids,
            last: NO_INSERT,
            near: 0,
            rising: false,
            turning: false,
        });
        node.rebrief();
        node
    }

    /// Takes an inner node's brief afresh, after its items changed.
    fn rebrief(&mut self) {
        if let Some(kids) = self.kids.as_deref_mut() {
            kids.brief = Brief::of(&self.items);
        }
    }

    /// Counts an insert at `at` into the node's run of inserts at one gap.
    fn note_insert(&mut self, at: usize) {
        let last = usize::from(self.last);
        let next = self.last != NO_INSERT && (at == last || at == last + 1);
        let rising = self.last != NO_INSERT && at == last + 1;
        self.turning = next && self.near > 0 && rising != self.rising;
        self.near = if next { self.near.saturating_add(1) } else { 0 };
        self.rising = rising;
        // `at` is at most CAP, below NO_INSERT.
        self.last = at as u8;
    }

    /// Where `key` is (`Ok`) or would go (`Err`) among this node's items. An inner node
    /// bisects its [`Brief`]. In a leaf the first item is tried before bisecting the
    /// rest: a list's pushes and pops at its head land there, and a linear search found
    /// them with one comparison each.
    ///
    /// Each comparison in a leaf loads another entry's key, usually a miss, and a
    /// bisection's next probe depends on the last comparison; so every item's key is
    /// asked for at the start, and each step asks again for both of the next step's
    /// candidates. Without the hints ZADD -P 16 (score entries inserted and removed at
    /// random places) ran 16% slower than on std's linear search, whose loads of
    /// successive items overlap; with only the first probes' keys asked for, a leaf's
    /// bisection waited on one miss per step (asking for all: ZADD -P 16 1.11x, HSET
    /// 1.10x the throughput).
    fn search(&self, key: &[u8]) -> Result<usize, usize> {
        let items = &self.items[..];
        let n = items.len();
        if n == 0 {
            return Err(0);
        }
        match self.kids.as_deref() {
            Some(kids) => return kids.brief.search(items, key),
            None => {
                for item in items {
                    prefetch_line(item.key_line());
                }
            }
        }
        match cmp_keys(items[0].key(), key) {
            Ordering::Greater => return Err(0),
            Ordering::Equal => return Ok(0),
            Ordering::Less => {}
        }
        let (mut lo, mut hi) = (1, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (left, right) = (lo + (mid - lo) / 2, mid + 1 + (hi - mid - 1) / 2);
            if left < mid {
                prefetch_line(items[left].key_line());
            }
            if right < hi {
                prefetch_line(items[right].key_line());
            }
            match cmp_keys(items[mid].key(), key) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// Puts `item` at `at` (and `right`, from a split below, as the child after it),
    /// splitting this node if it is full.
    fn put(&mut self, at: usize, item: T, right: Option<Box<Node<T>>>, sequential: bool) -> Ins<T> {
        self.note_insert(at);
        if self.items.is_full() {
            return self.split_insert(at, item, right, sequential);
        }
        self.items.insert(at, item);
        if let (Some(kids), Some(right)) = (self.kids.as_mut(), right) {
            kids.insert(at + 1, right);
            // The children after the split one moved up a place, and so do their counts.
            let n = kids.len();
            kids.sizes.copy_within(at + 1..n - 1, at + 2);
            kids.recount_at(at);
            kids.recount_at(at + 1);
        }
        self.rebrief();
        Ins::Done
    }

    /// Inserts `item` at `at` (and `right` as the child after it) into this full node by
    /// splitting it in two: in the middle, or, when the inserts before this one ran at
    /// one gap ([`RUN`] in a row), at the new item. A run then leaves full nodes behind
    /// it and goes on in a node with room, where middle splits left sequential inserts
    /// (pushes to a list, increasing ids) half-full nodes: 17 bytes of tree per key
    /// instead of 9.
    ///
    /// At the new item means beside it, between the run and the node's other keys:
    /// the item next to the new one on the other keys' side goes up, and the run goes
    /// on in a node that holds only the run's items (a run's first split may still send
    /// the new item up, when that side is empty). Sending the new item up left the run
    /// beside the other keys, with only the room they did not take: a list pushed at
    /// its head into a node of 24 other keys split every 5 pushes and left 5-item nodes
    /// behind. Two runs growing apart from one gap in turn (a list pushed at its tail,
    /// the next one at its head) are split at the new item, which puts one on each
    /// side; cut beside it, they would go on together and leave part-full nodes.
    fn split_insert(
        &mut self,
        at: usize,
        item: T,
        right: Option<Box<Node<T>>>,
        sequential: bool,
    ) -> Ins<T> {
        let run = sequential && self.near >= RUN;
        let mut all: ArrayVec<T, { CAP + 1 }> = self.items.drain(..).collect();
        all.insert(at, item);
        // Items `..mid` stay, `mid` goes up, the rest go right; neither side is empty.
        let mid = if run {
            // The run's side of the new item holds the run's items; the other side,
            // the node's other keys, or a run going the other way. Cut between them, so
            // the run goes on in a node of its own: beside the new item, or at it when
            // the other side is a run too.
            let beside = if self.turning {
                at
            } else if self.rising {
                at + 1
            } else {
                at.saturating_sub(1)
            };
            beside.clamp(1, CAP - 1)
        } else {
            all.len() / 2
        };
        let upper: ArrayVec<T, CAP> = all.drain(mid + 1..).collect();
        let Some(sep) = all.pop() else {
            unreachable!("a full node has items");
        };
        self.items = all.into_iter().collect();
        let kids = match (self.kids.as_mut(), right) {
            (Some(kids), Some(right)) => {
                let mut every: ArrayVec<Box<Node<T>>, { CAP + 2 }> = kids.drain(..).collect();
                every.insert(at + 1, right);
                let upper = Kids::of(every.drain(mid + 1..).collect());
                kids.nodes = every.into_iter().collect();
                kids.recount();
                Some(upper)
            }
            _ => None,
        };
        self.rebrief();
        let mut upper = Node::boxed(upper, kids);
        // The run's next insert is at the new item's place: where it went, or, when it
        // went up, the end of this half (keys below it) or the start of the other.
        (self.last, upper.last) = match at.cmp(&mid) {
            Ordering::Less => (at as u8, NO_INSERT),
            Ordering::Equal => (mid as u8, 0),
            Ordering::Greater => (NO_INSERT, (at - mid - 1) as u8),
        };
        if !run {
            (self.last, upper.last) = (NO_INSERT, NO_INSERT);
        }
        upper.near = self.near;
        upper.rising = self.rising;
        upper.turning = self.turning;
        Ins::Split(sep, upper)
    }

    /// Whether [`Node::refill`] would refill child `at` with an item from a sibling,
    /// rather than merging it.
    fn can_borrow_for(&self, at: usize) -> bool {
        self.kids.as_deref().is_some_and(|kids| {
            (at > 0 && kids[at - 1].items.len() > MIN)
                || kids.get(at + 1).is_some_and(|k| k.items.len() > MIN)
        })
    }

    /// Restores child `at` to at least [`MIN`] items after a removal below it: takes
    /// items through this node from a sibling that has more, or merges with a sibling.
    ///
    /// A borrow takes half of what the sibling holds beyond the child, not one item:
    /// removals at one end of a range (ZPOPMIN, LPOP of a long list) leave the same
    /// child short again at the next removal, and a borrow of one item paid for this
    /// node's brief and both children's counts at every removal (ZPOPMIN -P 16: 63,348
    /// refills for 60,000 removals, ~870 instructions per pop).
    fn refill(&mut self, at: usize) -> Refill {
        let Some(kids) = self.kids.as_mut() else {
            return Refill::Enough;
        };
        if kids[at].items.len() >= MIN {
            return Refill::Enough;
        }
        if at > 0 && kids[at - 1].items.len() > MIN {
            let (left, right) = kids.split_at_mut(at);
            let (from, to) = (&mut left[at - 1], &mut right[0]);
            // `from` holds more than MIN items and `to` fewer: k is at least one, and
            // `to` ends with at most (CAP + MIN) / 2 items.
            let k = (from.items.len() - to.items.len()) / 2;
            let keep = from.items.len() - k;
            // From's last k - 1 items and the separator go to the front of `to`; the
            // item before them goes up in the separator's place.
            let mut front: ArrayVec<T, CAP> = from.items.drain(keep + 1..).collect();
            let Some(up) = from.items.pop() else {
                return Refill::Enough;
            };
            front.push(std::mem::replace(&mut self.items[at - 1], up));
            front.extend(to.items.drain(..));
            to.items = front;
            if let (Some(fk), Some(tk)) = (from.kids.as_mut(), to.kids.as_mut()) {
                let n = fk.len();
                let mut nodes: ArrayVec<Box<Node<T>>, { CAP + 1 }> = fk.drain(n - k..).collect();
                nodes.extend(tk.drain(..));
                tk.nodes = nodes;
                fk.recount();
                tk.recount();
            }
            from.rebrief();
            to.rebrief();
            kids.recount_at(at - 1);
            kids.recount_at(at);
            self.rebrief();
            Refill::Borrowed
        } else if at + 1 < kids.len() && kids[at + 1].items.len() > MIN {
            let (left, right) = kids.split_at_mut(at + 1);
            let (to, from) = (&mut left[at], &mut right[0]);
            let k = (from.items.len() - to.items.len()) / 2;
            // The separator and from's first k - 1 items go to the end of `to`; from's
            // k-th goes up in the separator's place.
            let mut taken: ArrayVec<T, CAP> = from.items.drain(..k).collect();
            let Some(up) = taken.pop() else {
                return Refill::Enough;
            };
            to.items.push(std::mem::replace(&mut self.items[at], up));
            to.items.extend(taken);
            if let (Some(fk), Some(tk)) = (from.kids.as_mut(), to.kids.as_mut()) {
                tk.extend(fk.drain(..k));
                fk.recount();
                tk.recount();
            }
            from.rebrief();
            to.rebrief();
            kids.recount_at(at);
            kids.recount_at(at + 1);
            self.rebrief();
            Refill::Borrowed
        } else {
            // Neighbours with at most MIN items, this one under MIN: they and the item
            // between them fit in one node.
            let l = if at > 0 { at - 1 } else { at };
            if l + 1 >= kids.len() {
                return Refill::Merged; // an only child: the root, handled by the tree
            }
            let right = kids.remove(l + 1);
            // The children after the removed one moved down a place, and so do their
            // counts.
            let n = kids.len();
            kids.sizes.copy_within(l + 2..=n, l + 1);
            let sep = self.items.remove(l);
            let left = &mut kids[l];
            let Node {
                items, kids: rk, ..
            } = *right;
            left.items.push(sep);
            left.items.extend(items);
            if let (Some(lk), Some(rk)) = (left.kids.as_mut(), rk) {
                lk.extend(rk.nodes);
                lk.recount();
            }
            left.rebrief();
            kids.recount_at(l);
            self.rebrief();
            Refill::Merged
        }
    }

    /// Calls `f` on the items in `lo..hi` in ascending order until it returns false;
    /// returns false when the walk is over (stopped, or past `hi`).
    fn ascend<'a>(
        &'a self,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        f: &mut impl FnMut(&'a T) -> bool,
    ) -> bool {
        // `first` is the first item at or after `lo`; the child before it may hold more.
        let (first, kid_first) = match lo {
            Bound::Unbounded => (0, true),
            Bound::Included(k) => match self.search(k) {
                Ok(i) => (i, false),
                Err(i) => (i, true),
            },
            Bound::Excluded(k) => match self.search(k) {
                Ok(i) => (i + 1, true),
                Err(i) => (i, true),
            },
        };
        let kids = self.kids.as_deref();
        if let (Some(kids), true) = (kids, kid_first) {
            if !kids[first].ascend(lo, hi, f) {
                return false;
            }
        }
        for (i, item) in self.items.iter().enumerate().skip(first) {
            let past = match hi {
                Bound::Unbounded => false,
                Bound::Included(h) => cmp_keys(item.key(), h) == Ordering::Greater,
                Bound::Excluded(h) => cmp_keys(item.key(), h) != Ordering::Less,
            };
            if past || !f(item) {
                return false;
            }
            if let Some(kids) = kids {
                if !kids[i + 1].ascend(Bound::Unbounded, hi, f) {
                    return false;
                }
            }
        }
        true
    }

    /// Calls `f` on the items in `lo..hi` in descending order until it returns false;
    /// returns false when the walk is over (stopped, or below `lo`).
    fn descend<'a>(
        &'a self,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        f: &mut impl FnMut(&'a T) -> bool,
    ) -> bool {
        // Items before `end` are at or below `hi`; the child after them may hold more.
        let (end, kid_last) = match hi {
            Bound::Unbounded => (self.items.len(), true),
            Bound::Included(k) => match self.search(k) {
                Ok(i) => (i + 1, false),
                Err(i) => (i, true),
            },
            Bound::Excluded(k) => match self.search(k) {
                Ok(i) | Err(i) => (i, true),
            },
        };
        let kids = self.kids.as_deref();
        if let (Some(kids), true) = (kids, kid_last) {
            if !kids[end].descend(lo, hi, f) {
                return false;
            }
        }
        for i in (0..end).rev() {
            let item = &self.items[i];
            let past = match lo {
                Bound::Unbounded => false,
                Bound::Included(l) => cmp_keys(item.key(), l) == Ordering::Less,
                Bound::Excluded(l) => cmp_keys(item.key(), l) != Ordering::Greater,
            };
            if past || !f(item) {
                return false;
            }
            if let Some(kids) = kids {
                if !kids[i].descend(lo, Bound::Unbounded, f) {
                    return false;
                }
            }
        }
        true
    }
}

/// A set of keyed items in key order (bytewise, as [`cmp_keys`]).
pub struct OrderTree<T> {
    root: Box<Node<T>>,
    len: usize,
    /// Whether runs of inserts split nodes next to the run (always, but for tests that
    /// check the B-tree's fill bound, which those splits give up).
    sequential: bool,
    /// Leaves that inserts and removals keep going to, with a finger on each.
    slots: [Slot<T>; FINGERS],
    /// Whether a slot is in use: inserts and removals at random places find none, and
    /// skip them (ZADD of random members paid ~100 instructions for looking).
    tracking: bool,
    /// The leaves the last two descents reached, newest first (compared, never
    /// followed): a descent to one of them gets a finger.
    seen: [Option<NonNull<Node<T>>>; 2],
    /// Kept between descents, for its allocation.
    path: Path<T>,
    /// Inserts and removals that went through the finger.
    #[cfg(test)]
    finger_hits: usize,
    /// Removals whose refill borrowed from a sibling.
    #[cfg(test)]
    borrows: usize,
    /// Descents of [`OrderTree::rank`] (atomic: `rank` takes `&self`, and the tree
    /// stays `Sync`).
    #[cfg(test)]
    pub(crate) ranks: std::sync::atomic::AtomicUsize,
}

// SAFETY: the finger's pointers are into the tree's own nodes, followed only through
// `&mut self`; shared references reach the items alone, as with `Box`ed nodes.
unsafe impl<T: Send> Send for OrderTree<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for OrderTree<T> {}

impl<T: Keyed> Default for OrderTree<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Keyed> OrderTree<T> {
    /// An empty tree.
    pub fn new() -> Self {
        OrderTree {
            root: Node::leaf(),
            len: 0,
            sequential: true,
            slots: [Slot::FREE; FINGERS],
            tracking: false,
            seen: [None; 2],
            path: Vec::new(),
            #[cfg(test)]
            finger_hits: 0,
            #[cfg(test)]
            borrows: 0,
            #[cfg(test)]
            ranks: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// An empty tree whose nodes always split in the middle, so that every node but the
    /// root holds at least [`MIN`] items.
    #[cfg(test)]
    fn with_middle_splits() -> Self {
        OrderTree {
            sequential: false,
            ..Self::new()
        }
    }

    /// How many items the tree holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `item` unless an item with its key is there (then `item` is dropped and the
    /// tree unchanged, as `BTreeSet::insert`); returns whether it was added.
    pub fn insert(&mut self, item: T) -> bool {
        if let Some((slot, f, place)) = self.finger_for(item.key()) {
            if place == Place::Bound {
                return false;
            }
            // SAFETY: a finger that is set is good (see `Finger`), and `&mut self` holds
            // the whole tree.
            let leaf = unsafe { &mut *f.leaf.as_ptr() };
            if !leaf.items.is_full() {
                let at = match leaf.search(item.key()) {
                    Ok(_) => return false,
                    Err(at) => at,
                };
                leaf.note_insert(at);
                leaf.items.insert(at, item);
                self.len += 1;
                self.count_above(slot, true);
                self.note_hit(slot);
                return true;
            }
        }
        let mut path = std::mem::take(&mut self.path);
        let added = self.insert_down(item, &mut path);
        path.clear();
        self.path = path;
        added
    }

    /// Inserts `item` with a descent from the root, then splits back up as needed.
    fn insert_down(&mut self, item: T, path: &mut Path<T>) -> bool {
        let mut node = NonNull::from(&mut *self.root);
        let at = loop {
            // SAFETY: `node` is the root or a child reached from it, under `&mut self`.
            let n = unsafe { &mut *node.as_ptr() };
            let at = match n.search(item.key()) {
                Ok(_) => return false,
                Err(at) => at,
            };
            match n.kids.as_deref_mut() {
                None => break at,
                Some(kids) => {
                    path.push((node, at));
                    node = NonNull::from(&mut *kids[at]);
                }
            }
        };
        self.len += 1;
        count_path(path, true);
        // SAFETY: as above; the leaf's borrow ends before its parents are reached.
        let mut up = unsafe { &mut *node.as_ptr() }.put(at, item, None, self.sequential);
        // The highest node on the path that took a separator (0 also for a new root).
        let mut reshaped = None;
        let mut depth = path.len();
        while let Ins::Split(sep, right) = up {
            if depth == 0 {
                let left = std::mem::replace(&mut self.root, Node::leaf());
                let mut kids = Kids::of(ArrayVec::new());
                kids.push(left);
                kids.push(right);
                kids.recount();
                self.root.items.push(sep);
                self.root.kids = Some(kids);
                self.root.rebrief();
                reshaped = Some(0);
                break;
            }
            depth -= 1;
            let Some(&(parent, at)) = path.get(depth) else {
                break;
            };
            // SAFETY: a node on the path, under `&mut self`.
            up = unsafe { &mut *parent.as_ptr() }.put(at, sep, Some(right), self.sequential);
            reshaped = Some(depth);
        }
        self.follow(node, path, reshaped);
        true
    }

    /// Removes and returns the item with `key`, if there is one.
    pub fn remove(&mut self, key: &[u8]) -> Option<T> {
        if let Some((slot, f, place)) = self.finger_for(key) {
            if let Some(out) = self.remove_at_finger(slot, f, place, key) {
                self.note_hit(slot);
                return out;
            }
        }
        let mut path = std::mem::take(&mut self.path);
        let out = self.remove_down(key, &mut path);
        path.clear();
        self.path = path;
        out
    }

    /// Removes `key` with a descent from the root, then refills back up as needed. An
    /// inner item is replaced by its predecessor, the last item of the leaf the descent
    /// reaches by going on through last children.
    fn remove_down(&mut self, key: &[u8], path: &mut Path<T>) -> Option<T> {
        let mut node = NonNull::from(&mut *self.root);
        // The inner node holding `key`, and where.
        let mut inner: Option<(NonNull<Node<T>>, usize)> = None;
        let found = loop {
            // SAFETY: `node` is the root or a child reached from it, under `&mut self`.
            let n = unsafe { &mut *node.as_ptr() };
            let found = match inner {
                Some(_) => Err(n.items.len()),
                None => n.search(key),
            };
            let Some(kids) = n.kids.as_deref_mut() else {
                break found;
            };
            let at = match found {
                Ok(at) => {
                    inner = Some((node, at));
                    at
                }
                Err(at) => at,
            };
            path.push((node, at));
            node = NonNull::from(&mut *kids[at]);
        };
        // SAFETY: as above; the leaf's borrow ends before its parents are reached.
        let leaf = unsafe { &mut *node.as_ptr() };
        let out = match (inner, found) {
            (Some((holder, at)), _) => {
                // A leaf below the root holds an item.
                let pred = leaf.items.pop()?;
                // SAFETY: a node on the path above the leaf, which nothing else borrows.
                let holder = unsafe { &mut *holder.as_ptr() };
                let out = std::mem::replace(&mut holder.items[at], pred);
                holder.rebrief();
                out
            }
            (None, Ok(at)) => leaf.items.remove(at),
            (None, Err(_)) => return None,
        };
        self.len -= 1;
        count_path(path, false);
        // Up from the leaf while a child ran short and its refill took an item from its
        // parent (a merge), noting the highest node refilled. Between two leaves a
        // borrow only puts another separator in the slot between them, which stays
        // their bound: fingers on them are still good.
        let mut reshaped = None;
        for (depth, &(parent, at)) in path.iter().enumerate().rev() {
            // SAFETY: a node on the path, under `&mut self`.
            match unsafe { &mut *parent.as_ptr() }.refill(at) {
                Refill::Enough => break,
                Refill::Borrowed => {
                    #[cfg(test)]
                    {
                        self.borrows += 1;
                    }
                    if depth + 1 < path.len() {
                        reshaped = Some(depth);
                    }
                    break;
                }
                Refill::Merged => reshaped = Some(depth),
            }
        }
        if self.root.items.is_empty() {
            if let Some(only) = self
                .root
                .kids
                .take()
                .and_then(|k| k.nodes.into_iter().next())
            {
                self.root = only;
                reshaped = Some(0);
            }
        }
        self.follow(node, path, reshaped);
        Some(out)
    }

    /// A finger whose leaf holds `key` or is bounded by it: its slot, the finger and
    /// where the key is against the leaf.
    #[inline(always)]
    fn finger_for(&self, key: &[u8]) -> Option<(usize, Finger<T>, Place)> {
        if !self.tracking {
            return None;
        }
        let mut found = None;
        for (i, s) in self.slots.iter().enumerate() {
            let Some(f) = s.finger else { continue };
            // SAFETY: a finger that is set is good.
            if let Some(place) = unsafe { f.place(key) } {
                found = Some((i, f, place));
                break;
            }
        }
        #[cfg(test)]
        if let Some((_, f, place)) = found {
            self.check_finger(f, key, place);
        }
        found
    }

    /// Panics unless a descent for `key` reaches the finger's leaf by its parent and
    /// between its bounds (for a bound, the descent to the key's predecessor).
    #[cfg(test)]
    fn check_finger(&self, f: Finger<T>, key: &[u8], place: Place) {
        let mut path = Path::new();
        let mut node = NonNull::from(&*self.root);
        let mut found = false;
        loop {
            // SAFETY: the root or a child reached from it, under `&self`.
            let n = unsafe { &*node.as_ptr() };
            let Some(kids) = n.kids.as_deref() else {
                break;
            };
            let at = match (found, n.search(key)) {
                (true, _) => n.items.len(),
                (false, Ok(at)) => {
                    found = true;
                    at
                }
                (false, Err(at)) => at,
            };
            path.push((node, at));
            node = NonNull::from(&*kids[at]);
        }
        assert_eq!(
            found,
            place == Place::Bound,
            "a finger's bound is not an inner item"
        );
        let fresh = Self::finger_on(node, &path);
        assert!(
            fresh.leaf == f.leaf && fresh.parent == f.parent,
            "a finger on another leaf"
        );
        assert!(
            fresh.lo == f.lo && fresh.hi == f.hi,
            "a finger's bounds moved"
        );
    }

    /// Removes `key` through the finger, when that changes no inner node but for the
    /// slot between the leaf and a sibling: the item in it (the leaf's upper bound, when
    /// that is `key`: a list popped at its tail meets it at every pop once the leaf
    /// after holds other keys) or an item borrowed from the sibling. None: the removal
    /// must go the long way.
    fn remove_at_finger(
        &mut self,
        slot: usize,
        f: Finger<T>,
        place: Place,
        key: &[u8],
    ) -> Option<Option<T>> {
        // SAFETY: a finger that is set is good (see `Finger`), and `&mut self` holds the
        // whole tree. The leaf is its parent's child `at`, a node of its own, and its
        // borrow ends before the parent reaches it again.
        let leaf = unsafe { &mut *f.leaf.as_ptr() };
        let Some((parent, at)) = f.parent else {
            // The root, a leaf: no bound, nothing to refill.
            let out = leaf.search(key).ok().map(|i| leaf.items.remove(i));
            self.len -= usize::from(out.is_some());
            return Some(out);
        };
        // SAFETY: as above.
        let p = unsafe { &mut *parent.as_ptr() };
        // A removal that leaves the leaf short takes an item from a sibling; one that
        // would merge it goes the long way.
        if leaf.items.len() <= MIN && !p.can_borrow_for(at) {
            return None;
        }
        let out = match place {
            Place::Inside => match leaf.search(key) {
                Ok(i) => leaf.items.remove(i),
                // Between the leaf's bounds, so nowhere else in the tree either.
                Err(_) => return Some(None),
            },
            // The bound is an inner item whose predecessor is the leaf's last item: below
            // the node that holds it, the descent went to last children only. That
            // item takes its slot and is the leaf's bound from now on, as the long
            // way (`Node::pop_last`) would leave it.
            Place::Bound => {
                let (hi, hi_in) = (f.hi?, f.hi_in?);
                let pred = leaf.items.pop()?;
                match p.items.get_mut(at) {
                    Some(slot) => {
                        let out = std::mem::replace(slot, pred);
                        p.rebrief();
                        out
                    }
                    None => {
                        // SAFETY: the bound is an item of a node above the parent (the
                        // leaf is the parent's last child), which nothing else borrows;
                        // `hi_in` is that node.
                        let out = std::mem::replace(unsafe { &mut *hi.as_ptr() }, pred);
                        // SAFETY: as above.
                        unsafe { &mut *hi_in.as_ptr() }.rebrief();
                        out
                    }
                }
            }
        };
        // Counted before the refill, which counts the leaf and its sibling afresh.
        self.count_above(slot, false);
        let _refill = p.refill(at);
        #[cfg(test)]
        if matches!(_refill, Refill::Borrowed) {
            self.borrows += 1;
        }
        self.len -= 1;
        Some(Some(out))
    }

    /// Counts an insert (`added`) or removal through the finger in `slot` in the nodes
    /// above its leaf.
    fn count_above(&mut self, slot: usize, added: bool) {
        if let Some(s) = self.slots.get(slot) {
            count_path(&s.ancestors, added);
        }
    }

    /// How many items have keys below `key`, and `key` itself too with `inclusive`.
    pub fn rank(&self, key: &[u8], inclusive: bool) -> usize {
        #[cfg(test)]
        self.ranks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut node = &*self.root;
        let mut below = 0;
        loop {
            let found = node.search(key);
            let (Ok(at) | Err(at)) = found;
            let Some(kids) = node.kids.as_deref() else {
                return below + at + usize::from(inclusive && found.is_ok());
            };
            // The items before `at` and the children before it, all below `key`.
            below += at + kids.below(at);
            match found {
                // The child before the item holds keys below it too.
                Ok(i) => return below + kids.sizes[i] + usize::from(inclusive),
                Err(i) => node = &kids[i],
            }
        }
    }

    /// The item at position `n` in key order (0: the first).
    pub fn nth(&self, mut n: usize) -> Option<&T> {
        let mut node = &*self.root;
        loop {
            let Some(kids) = node.kids.as_deref() else {
                return node.items.get(n);
            };
            let mut next = None;
            for (i, kid) in kids.iter().enumerate() {
                let size = kids.sizes[i];
                if n < size {
                    next = Some(kid);
                    break;
                }
                n -= size;
                if let Some(item) = node.items.get(i) {
                    if n == 0 {
                        return Some(item);
                    }
                    n -= 1;
                }
            }
            node = next?;
        }
    }

    /// An insert or removal went through the finger in `slot`.
    fn note_hit(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.misses = 0;
        }
        #[cfg(test)]
        {
            self.finger_hits += 1;
        }
    }

    /// Notes a descent that reached `leaf` through `path`, and the highest node on the
    /// path whose subtree it `reshaped` (a depth; 0 with no path: the root replaced).
    ///
    /// Fingers on leaves in that subtree are dropped. A slot for `leaf` gets its finger
    /// back. Else a slot whose leaf moved (split or merged by the last descent to it)
    /// is taken over, or, when one of the last two descents reached `leaf` too, a free
    /// slot or the one missed most often. Slots that descents keep missing are freed.
    #[inline(always)]
    fn follow(&mut self, leaf: NonNull<Node<T>>, path: &Path<T>, reshaped: Option<usize>) {
        if !self.tracking && !self.seen.contains(&Some(leaf)) {
            self.seen = [Some(leaf), self.seen[0]];
            return;
        }
        self.follow_slots(leaf, path, reshaped);
    }

    /// [`Self::follow`] with a slot in use or one to take.
    #[inline(never)]
    fn follow_slots(&mut self, leaf: NonNull<Node<T>>, path: &Path<T>, reshaped: Option<usize>) {
        // The reshaped subtree's top (None with it: the root was replaced).
        let top = reshaped.map(|d| (d, path.get(d).map(|&(node, _)| node)));
        let mut mine = None;
        for (i, s) in self.slots.iter_mut().enumerate() {
            if let Some((depth, node)) = top {
                if node.is_none() || s.ancestors.get(depth).map(|a| a.0) == node {
                    s.finger = None;
                }
            }
            if s.leaf == Some(leaf) {
                mine = Some(i);
            } else if s.leaf.is_some() {
                s.misses += 1;
                if s.misses >= MISSES {
                    *s = Slot::FREE;
                }
            }
        }
        let repeat = self.seen.contains(&Some(leaf));
        if self.seen[0] != Some(leaf) {
            self.seen = [Some(leaf), self.seen[0]];
        }
        let slot = mine
            .or_else(|| self.slots.iter().position(|s| s.moved))
            .or_else(|| {
                repeat.then(|| {
                    (0..FINGERS)
                        .max_by_key(|&i| match self.slots[i].leaf {
                            None => u8::MAX,
                            Some(_) => self.slots[i].misses,
                        })
                        .unwrap_or(0)
                })
            });
        if let Some(s) = slot.and_then(|i| self.slots.get_mut(i)) {
            *s = Slot {
                leaf: Some(leaf),
                moved: reshaped.is_some(),
                ..Slot::FREE
            };
            if reshaped.is_none() && path.len() <= MAX_DEPTH {
                s.ancestors.extend(path.iter().copied());
                s.finger = Some(Self::finger_on(leaf, path));
            }
        }
        self.tracking = self.slots.iter().any(|s| s.leaf.is_some());
    }

    /// The finger on `leaf`, reached through `path` by a descent that changed no inner
    /// node.
    fn finger_on(leaf: NonNull<Node<T>>, path: &Path<T>) -> Finger<T> {
        let (mut lo, mut hi, mut hi_in) = (None, None, None);
        for &(node, at) in path.iter().rev() {
            // SAFETY: nodes on the path, unchanged since the descent (no inner change).
            let items = unsafe { &(*node.as_ptr()).items };
            if lo.is_none() && at > 0 {
                lo = items.get(at - 1).map(NonNull::from);
            }
            if hi.is_none() {
                hi = items.get(at).map(NonNull::from);
                hi_in = hi.map(|_| node);
            }
            if lo.is_some() && hi.is_some() {
                break;
            }
        }
        Finger {
            leaf,
            parent: path.last().copied(),
            lo,
            hi,
            hi_in,
        }
    }

    /// Calls `f` on the items whose keys are in `(lo, hi)`, in `dir` order, until it
    /// returns false.
    pub fn walk<'a>(
        &'a self,
        (lo, hi): (Bound<&[u8]>, Bound<&[u8]>),
        dir: Direction,
        mut f: impl FnMut(&'a T) -> bool,
    ) {
        match dir {
            Direction::Forward => self.root.ascend(lo, hi, &mut f),
            Direction::Reverse => self.root.descend(lo, hi, &mut f),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeSet;

    impl Keyed for Vec<u8> {
        fn key(&self) -> &[u8] {
            self
        }
    }

    /// Checks the B-tree's shape below `node` (which holds `own_min` items or more, and
    /// every node under it `min`), appends its keys to `out` in order and returns its
    /// leaves' depth.
    fn check<T: Keyed>(
        node: &Node<T>,
        own_min: usize,
        min: usize,
        out: &mut Vec<Vec<u8>>,
    ) -> usize {
        assert!(node.items.len() >= own_min, "a node under {own_min} items");
        match node.kids.as_deref() {
            None => {
                out.extend(node.items.iter().map(|i| i.key().to_vec()));
                0
            }
            Some(kids) => {
                assert_eq!(kids.len(), node.items.len() + 1);
                assert_eq!(kids.brief, Brief::of(&node.items), "a stale brief");
                let mut depth = None;
                for (i, kid) in kids.iter().enumerate() {
                    let before = out.len();
                    let d = check(kid, min, min, out);
                    assert_eq!(kids.sizes[i], out.len() - before, "a stale count");
                    assert_eq!(*depth.get_or_insert(d), d, "leaves at different depths");
                    if let Some(item) = node.items.get(i) {
                        out.push(item.key().to_vec());
                    }
                }
                depth.map_or(0, |d| d + 1)
            }
        }
    }

    /// The tree's shape is valid and it holds exactly `model`, in order.
    fn same(tree: &OrderTree<Vec<u8>>, model: &BTreeSet<Vec<u8>>) -> usize {
        let mut all = Vec::new();
        // Sequential splits may leave a node with a single item; middle ones never
        // under MIN.
        let min = if tree.sequential { 1 } else { MIN };
        // An inner root holds at least one item.
        let root_min = usize::from(tree.root.kids.is_some());
        let depth = check(&tree.root, root_min, min, &mut all);
        assert_eq!(all, model.iter().cloned().collect::<Vec<_>>());
        assert_eq!(tree.len(), model.len());
        // Positions, at about a hundred places along the tree and past its end.
        for i in (0..all.len()).step_by(all.len() / 100 + 1) {
            assert_eq!(tree.nth(i), Some(&all[i]), "the item at {i}");
            assert_eq!(tree.rank(&all[i], false), i, "the rank of the item at {i}");
            assert_eq!(tree.rank(&all[i], true), i + 1);
        }
        assert_eq!(tree.nth(all.len()), None);
        depth
    }

    fn collect(
        tree: &OrderTree<Vec<u8>>,
        b: (Bound<&[u8]>, Bound<&[u8]>),
        dir: Direction,
        limit: usize,
    ) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        tree.walk(b, dir, |i| {
            out.push(i.clone());
            out.len() < limit
        });
        out
    }

    fn model_walk(
        model: &BTreeSet<Vec<u8>>,
        b: (Bound<&[u8]>, Bound<&[u8]>),
        dir: Direction,
        limit: usize,
    ) -> Vec<Vec<u8>> {
        let r = model.range::<[u8], _>(b);
        match dir {
            Direction::Forward => r.take(limit).cloned().collect(),
            Direction::Reverse => r.rev().take(limit).cloned().collect(),
        }
    }

    fn key(n: u32) -> Vec<u8> {
        // A long shared prefix, as collection keys have, then the number.
        let mut k = b"\x02\x00list:key:\x00\x00\x00\x01".to_vec();
        k.extend_from_slice(&n.to_be_bytes());
        k
    }

    /// Keys of many shapes, for the inner nodes' briefs: shared prefixes shorter and
    /// longer than `PREFIX`, keys that are prefixes of others ("7" of "70"), zero and
    /// 0xff bytes, the empty key.
    fn mixed_key(n: u32) -> Vec<u8> {
        let mut k = match n % 5 {
            0 => Vec::new(),
            1 => vec![0u8; 3],
            2 => vec![b'S'; PREFIX + 9],
            3 => b"\xff\xffkey:".to_vec(),
            _ => vec![b'S'; PREFIX - 4],
        };
        if !n.is_multiple_of(11) {
            k.extend_from_slice((n / 5).to_string().as_bytes());
        }
        if n.is_multiple_of(7) {
            k.push(0);
        }
        k
    }

    fn bound(kind: u8, k: &[u8]) -> Bound<&[u8]> {
        match kind % 3 {
            0 => Bound::Unbounded,
            1 => Bound::Included(k),
            _ => Bound::Excluded(k),
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32),
        Remove(u32),
        /// Keys `from..from + len`, ascending or descending, as pushes to a list.
        Run(u32, u32, bool),
        /// Removals of keys `from..from + len`, ascending or descending, as pops.
        Trim(u32, u32, bool),
        /// `len` pushes past `from + 300` and pops from `from` up, in turn, as a queue.
        Queue(u32, u32),
        Walk(u32, u8, u32, u8, bool, usize),
        /// A key's rank (at or below it, or below) and the item at a position.
        Position(u32, bool, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..3000).prop_map(Op::Insert),
            3 => (0u32..3000).prop_map(Op::Remove),
            1 => (0u32..3000, 1u32..300, any::<bool>()).prop_map(|(f, n, d)| Op::Run(f, n, d)),
            1 => (0u32..3000, 1u32..300, any::<bool>()).prop_map(|(f, n, d)| Op::Trim(f, n, d)),
            1 => (0u32..3000, 1u32..300).prop_map(|(f, n)| Op::Queue(f, n)),
            1 => (0u32..3000, 0u8..3, 0u32..3000, 0u8..3, any::<bool>(), 1usize..200)
                .prop_map(|(a, ak, b, bk, rev, n)| Op::Walk(a, ak, b, bk, rev, n)),
            1 => (0u32..3000, any::<bool>(), 0usize..3000)
                .prop_map(|(k, inclusive, n)| Op::Position(k, inclusive, n)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Against std's BTreeSet: the same answers to inserts, removals and bounded
        /// walks both ways, and a valid B-tree after every step.
        #[test]
        fn behaves_as_a_btreeset(
            ops in proptest::collection::vec(op(), 1..3000),
            middle in any::<bool>(),
            mixed in any::<bool>(),
        ) {
            let key: fn(u32) -> Vec<u8> = if mixed { mixed_key } else { key };
            let mut tree = if middle { OrderTree::with_middle_splits() } else { OrderTree::new() };
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(n) => prop_assert_eq!(tree.insert(key(n)), model.insert(key(n))),
                    Op::Remove(n) => {
                        prop_assert_eq!(tree.remove(&key(n)), model.take(&key(n)));
                    }
                    Op::Run(from, len, down) => {
                        let run: Vec<u32> = (from..from + len).collect();
                        let order: Box<dyn Iterator<Item = &u32>> =
                            if down { Box::new(run.iter().rev()) } else { Box::new(run.iter()) };
                        for &n in order {
                            prop_assert_eq!(tree.insert(key(n)), model.insert(key(n)));
                        }
                    }
                    Op::Trim(from, len, down) => {
                        let run: Vec<u32> = (from..from + len).collect();
                        let order: Box<dyn Iterator<Item = &u32>> =
                            if down { Box::new(run.iter().rev()) } else { Box::new(run.iter()) };
                        for &n in order {
                            prop_assert_eq!(tree.remove(&key(n)), model.take(&key(n)));
                        }
                    }
                    Op::Queue(from, len) => {
                        for i in 0..len {
                            let (push, pop) = (key(from + 300 + i), key(from + i));
                            prop_assert_eq!(tree.insert(push.clone()), model.insert(push));
                            prop_assert_eq!(tree.remove(&pop), model.take(&pop));
                        }
                    }
                    Op::Walk(a, ak, b, bk, rev, limit) => {
                        let (ka, kb) = (key(a), key(b));
                        let (lo, hi) = (bound(ak, &ka), bound(bk, &kb));
                        // std's range panics on an inverted range; the index never asks one.
                        let inverted = match (lo, hi) {
                            (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
                            (Bound::Excluded(x), Bound::Excluded(y)) => x >= y,
                            (Bound::Included(x) | Bound::Excluded(x),
                             Bound::Included(y) | Bound::Excluded(y)) => x > y,
                        };
                        if inverted {
                            continue;
                        }
                        let dir = if rev { Direction::Reverse } else { Direction::Forward };
                        prop_assert_eq!(
                            collect(&tree, (lo, hi), dir, limit),
                            model_walk(&model, (lo, hi), dir, limit)
                        );
                    }
                    Op::Position(k, inclusive, n) => {
                        let k = key(k);
                        let upto = if inclusive { Bound::Included(&k[..]) } else { Bound::Excluded(&k[..]) };
                        let below = model.range::<[u8], _>((Bound::Unbounded, upto)).count();
                        prop_assert_eq!(tree.rank(&k, inclusive), below);
                        prop_assert_eq!(tree.nth(n), model.iter().nth(n));
                    }
                }
            }
            same(&tree, &model);
        }
    }

    /// Hundreds of thousands of keys, in and out in shuffled and in sequential orders,
    /// grow and shrink the tree through several levels; it keeps its shape and contents.
    fn nodes<T: Keyed>(n: &Node<T>) -> usize {
        1 + n
            .kids
            .as_deref()
            .map_or(0, |k| k.iter().map(|c| nodes(c)).sum::<usize>())
    }

    /// Ascending and descending inserts, alone or two runs in turn, leave full nodes
    /// behind (about half as many as middle splits), and other orders no more nodes.
    #[test]
    fn runs_of_inserts_fill_their_nodes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut shuffled: Vec<u32> = (0..200_000).collect();
        shuffled.shuffle(&mut rng);
        // (pattern, inserts, whether it should leave full nodes behind)
        let patterns: [(&str, Vec<u32>, bool); 5] = [
            ("ascending", (0..200_000).collect(), true),
            ("descending", (0..200_000).rev().collect(), true),
            // Two lists pushed at their tails, in turn.
            (
                "two tails",
                (0..200_000).map(|n| n / 2 + (n % 2) * 1_000_000).collect(),
                true,
            ),
            // One pushed at its tail, the next one in key order at its head: both grow
            // into one gap, so whichever way a node splits, one side is left part full.
            (
                "one gap",
                (0..200_000)
                    .map(|n| if n % 2 == 0 { n / 2 } else { 1_000_000 - n / 2 })
                    .collect(),
                false,
            ),
            ("shuffled", shuffled, false),
        ];
        for (name, nums, full) in patterns {
            let mut runs = OrderTree::new();
            let mut middle = OrderTree::with_middle_splits();
            for &n in &nums {
                runs.insert(key(n));
                middle.insert(key(n));
            }
            let (r, m) = (nodes(&runs.root), nodes(&middle.root));
            let model: BTreeSet<Vec<u8>> = nums.iter().map(|&n| key(n)).collect();
            same(&runs, &model);
            same(&middle, &model);
            if full {
                assert!(
                    r * 10 <= m * 6,
                    "{name}: {r} nodes against {m} with middle splits"
                );
            } else {
                assert!(
                    r * 100 <= m * 103,
                    "{name}: {r} nodes against {m} with middle splits"
                );
            }
        }
    }

    /// A run that grows into a gap between other keys (a list pushed at its head, right
    /// after another key's entries; one pushed at its tail, right before them) leaves
    /// full nodes behind however many of those other keys share its node: splitting at
    /// the new item left the others' side with the run's next inserts and only the room
    /// they did not take, so a node that held 24 of them split every 5 pushes.
    #[test]
    fn runs_beside_other_keys_fill_their_nodes() {
        // Other keys far apart, inserted in order: full nodes. Each of 29 gaps in a row
        // (one of them is every place in a node) gets a run of its own, on a tree of
        // its own.
        let others: Vec<u32> = (0..2_000).map(|n| n << 20).collect();
        for g in 1_000..1_000 + CAP as u32 {
            let gap = g << 20;
            let runs: [(&str, Vec<u32>); 2] = [
                ("descending", (1..=10_000).map(|i| gap - i).collect()),
                (
                    "ascending",
                    (1..=10_000).map(|i| gap - 20_000 + i).collect(),
                ),
            ];
            for (name, run) in runs {
                let mut tree = OrderTree::new();
                let mut model = BTreeSet::new();
                for &n in &others {
                    tree.insert(key(n));
                    model.insert(key(n));
                }
                let before = nodes(&tree.root);
                for &n in &run {
                    tree.insert(key(n));
                    model.insert(key(n));
                }
                same(&tree, &model);
                let added = nodes(&tree.root) - before;
                // Full leaves hold 29 items; allow for the leaves the run starts and
                // ends in, and the inner nodes above.
                assert!(
                    added * 26 <= run.len(),
                    "{name} into gap {g}: {added} nodes for a run of {}",
                    run.len()
                );
            }
        }
    }

    /// A deep tree of 100,000 keys, in shuffled order, below 100,000 and above
    /// 2,000,000, leaving room in the middle; and the keys, in that order.
    fn deep_around_the_middle(
        rng: &mut rand::rngs::StdRng,
    ) -> (OrderTree<Vec<u8>>, BTreeSet<Vec<u8>>, Vec<u32>) {
        let mut tree = OrderTree::new();
        let mut model = BTreeSet::new();
        let mut others: Vec<u32> = (0..100_000)
            .map(|n| if n % 2 == 0 { n } else { 2_000_000 + n })
            .collect();
        others.shuffle(rng);
        for &n in &others {
            tree.insert(key(n));
            model.insert(key(n));
        }
        (tree, model, others)
    }

    /// Pushes and pops at one end of a run of keys in the middle of a deep tree go
    /// through the finger (no descent) nearly every time, and leave the tree as the
    /// model; keys at random places do not use it.
    #[test]
    fn one_ends_pushes_and_pops_skip_the_descent() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let (mut tree, mut model, mut others) = deep_around_the_middle(&mut rng);
        let list = |i: u32| key(1_000_000 + i);
        // (phase, keys in order, push or pop)
        let phases: [(&str, Vec<u32>, bool); 4] = [
            ("pushes at the tail", (0..50_000).collect(), true),
            ("pops at the tail", (0..50_000).rev().collect(), false),
            ("pushes at the head", (0..50_000).rev().collect(), true),
            ("pops at the head", (0..50_000).collect(), false),
        ];
        for (phase, order, push) in phases {
            let before = tree.finger_hits;
            for &i in &order {
                if push {
                    assert!(tree.insert(list(i)), "{phase}: {i} was new");
                    model.insert(list(i));
                } else {
                    assert_eq!(tree.remove(&list(i)), Some(list(i)), "{phase}: {i}");
                    model.remove(&list(i));
                }
            }
            let hits = tree.finger_hits - before;
            assert!(
                hits * 10 >= order.len() * 9,
                "{phase}: {hits} of {} through the finger",
                order.len()
            );
            assert!(same(&tree, &model) >= 2, "{phase}: the tree is deep");
        }
        let before = tree.finger_hits;
        others.shuffle(&mut rng);
        for &n in &others[..20_000] {
            assert_eq!(tree.remove(&key(n)), Some(key(n)));
            model.remove(&key(n));
        }
        let hits = tree.finger_hits - before;
        assert!(hits < 200, "{hits} random removals through the finger");
        same(&tree, &model);
    }

    /// Removals at one end of a range of keys (ZPOPMIN, a list popped at its head)
    /// leave the same leaf short again and again: each borrow evens the leaf out with
    /// its sibling, so only some of them borrow (one item at a time, nearly every other
    /// removal did).
    #[test]
    fn removals_at_one_end_borrow_now_and_then() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut tree = OrderTree::with_middle_splits();
        let mut model = BTreeSet::new();
        let mut ns: Vec<u32> = (0..40_000).collect();
        ns.shuffle(&mut rng);
        for &n in &ns {
            tree.insert(key(n));
            model.insert(key(n));
        }
        for front in [true, false] {
            let before = tree.borrows;
            for _ in 0..10_000 {
                let k = if front {
                    model.pop_first()
                } else {
                    model.pop_last()
                };
                let Some(k) = k else { break };
                assert_eq!(tree.remove(&k), Some(k.clone()));
            }
            let borrows = tree.borrows - before;
            assert!(
                borrows * 5 <= 10_000,
                "{borrows} borrows for 10,000 removals at the {}",
                if front { "front" } else { "back" }
            );
            same(&tree, &model);
        }
    }

    /// A queue in the middle of a deep tree, pushed at its tail and popped at its head
    /// in turn, goes through the fingers most of the time, also with an insert at a
    /// random place between every few of its operations. (Each split or merge at
    /// either end costs two descents: its own, and one to find the reshaped leaf.)
    #[test]
    fn a_queues_pushes_and_pops_skip_the_descent() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let (mut tree, mut model, _) = deep_around_the_middle(&mut rng);
        let queue = |i: u32| key(1_000_000 + i);
        for i in 0..1_000 {
            tree.insert(queue(i));
            model.insert(queue(i));
        }
        // (phase, a random insert every this many queue operations (0: none), least
        // share of them through a finger in percent)
        let mut next = 1_000;
        for (phase, every, least) in [("alone", 0, 88), ("with random inserts", 4, 82)] {
            let before = tree.finger_hits;
            let ops = 40_000;
            for op in 0..ops {
                if op % 2 == 0 {
                    assert!(tree.insert(queue(next)), "{phase}: {next} was new");
                    model.insert(queue(next));
                    next += 1;
                } else {
                    let head = next - 1_000;
                    assert_eq!(tree.remove(&queue(head)), Some(queue(head)), "{phase}");
                    model.remove(&queue(head));
                }
                if every > 0 && op % every == 0 {
                    // Odd keys below 100,000 are free.
                    let n = rng.gen_range(0..50_000u32) * 2 + 1;
                    assert_eq!(tree.insert(key(n)), model.insert(key(n)));
                }
            }
            let hits = tree.finger_hits - before;
            assert!(
                hits * 100 >= ops * least,
                "{phase}: {hits} of {ops} queue operations through a finger"
            );
            assert!(same(&tree, &model) >= 2, "{phase}: the tree is deep");
        }
    }

    /// Hundreds of thousands of keys, in and out in shuffled and in sequential orders,
    /// grow and shrink the tree through several levels; it keeps its shape and contents.
    #[test]
    fn deep_trees_grow_and_shrink_through_every_level() {
        for middle in [false, true] {
            deep_tree(middle);
        }
    }

    fn deep_tree(middle: bool) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut nums: Vec<u32> = (0..300_000).collect();
        nums.shuffle(&mut rng);
        let mut tree = if middle {
            OrderTree::with_middle_splits()
        } else {
            OrderTree::new()
        };
        let mut model = BTreeSet::new();
        for (i, &n) in nums.iter().enumerate() {
            assert!(tree.insert(key(n)));
            model.insert(key(n));
            if i % 50_000 == 0 {
                same(&tree, &model);
            }
        }
        assert!(
            same(&tree, &model) >= 3,
            "the test should reach four levels"
        );
        assert!(!tree.insert(key(5)), "a present key is not added twice");
        nums.shuffle(&mut rng);
        for (i, &n) in nums[..250_000].iter().enumerate() {
            assert_eq!(tree.remove(&key(n)).as_deref(), Some(&key(n)[..]));
            assert_eq!(tree.remove(&key(n)), None);
            model.remove(&key(n));
            if i % 25_000 == 0 {
                same(&tree, &model);
            }
        }
        same(&tree, &model);
        // As lists pop from one end and push at the other, both ways.
        for n in 300_000..400_000 {
            tree.insert(key(n));
            model.insert(key(n));
            let Some(first) = model.pop_first() else {
                break;
            };
            assert_eq!(tree.remove(&first), Some(first));
        }
        same(&tree, &model);
        for n in (500_000..600_000).rev() {
            tree.insert(key(n));
            model.insert(key(n));
            let Some(last) = model.pop_last() else { break };
            assert_eq!(tree.remove(&last), Some(last));
        }
        same(&tree, &model);
        let all = (Bound::Unbounded, Bound::Unbounded);
        for dir in [Direction::Forward, Direction::Reverse] {
            assert_eq!(
                collect(&tree, all, dir, 10),
                model_walk(&model, all, dir, 10)
            );
        }
        for k in std::mem::take(&mut model) {
            assert_eq!(tree.remove(&k), Some(k));
        }
        assert!(tree.is_empty());
        assert_eq!(same(&tree, &model), 0, "an emptied tree is one leaf again");
    }
}
