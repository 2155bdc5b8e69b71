//! When an element's data is too old to trust. A scene sets `staleAfterSeconds`; an element is
//! stale when its primary twin has not been written for longer than that. "Written" means the
//! newest per-property `lastUpdateTime` the server stamped (ADT's `$metadata`), so a viewer that
//! connects to a server restored from disk sees old data as old. A twin with no timestamps at
//! all was never written by a live source (a wall, a floor, a twin from a static file): it has
//! no data to go stale, so it is never marked.
//!
//! Timestamps come from the server's clock and `now` from the viewer's; a skew between the two
//! shifts staleness by that much (docs/protocol.md).

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap};

use crate::expression::parse_rfc3339_millis;
use crate::twin::{CompactString, Twin};

/// Milliseconds since the Unix epoch of the twin's newest property write, if any property
/// carries a readable `lastUpdateTime`. For many twins, [`UpdateTimes`] parses less.
pub fn last_update_millis(twin: &Twin) -> Option<f64> {
    UpdateTimes::default().newest(twin)
}

/// [`last_update_millis`] of one twin after another, parsing a time only when it differs from
/// the one before: the writes of a live batch are stamped alike (parsing each was an eighth of
/// following 10^4 writes at 10^6 elements).
#[derive(Debug, Default)]
pub struct UpdateTimes {
    last: Option<(CompactString, Option<f64>)>,
}

impl UpdateTimes {
    /// The twin's newest readable `lastUpdateTime`, in milliseconds since the Unix epoch.
    pub fn newest(&mut self, twin: &Twin) -> Option<f64> {
        let mut newest: Option<f64> = None;
        for time in twin.last_update_time.values() {
            let millis = match &self.last {
                Some((text, millis)) if text == time => *millis,
                _ => {
                    let millis = parse_rfc3339_millis(time);
                    self.last = Some((time.clone(), millis));
                    millis
                }
            };
            if let Some(millis) = millis {
                newest = Some(newest.map_or(millis, |n| n.max(millis)));
            }
        }
        newest
    }
}

/// Whether data last written at `last_update` is older than `max_age_seconds` at `now` (times in
/// milliseconds since the Unix epoch). Never-written data (`None`) is not stale.
pub fn is_stale(last_update: Option<f64>, now: f64, max_age_seconds: f64) -> bool {
    // The same sum as [`StaleElements`]' due times, so that both agree to the last bit.
    last_update.is_some_and(|written| now > stale_from(written, max_age_seconds))
}

/// When data written at `written` goes stale (it is stale at any later time).
fn stale_from(written: f64, max_age_seconds: f64) -> f64 {
    written + max_age_seconds * 1000.0
}

/// Whether the twin's newest write is older than `max_age_seconds` at `now`.
pub fn twin_is_stale(twin: &Twin, now: f64, max_age_seconds: f64) -> bool {
    is_stale(last_update_millis(twin), now, max_age_seconds)
}

/// Which elements show stale data, kept up to date from what was written instead of by a look
/// at every element's twin on each tick: a tick costs the writes since the one before and the
/// elements whose staleness flips, not the element count (a million at the largest).
///
/// Elements are indexes into the scene's elements; each has its primary twin's newest write
/// time (`None`: never written, or no twin), which its owner passes in: all of them at first
/// ([`Self::new`]), then each element whose twin was written ([`Self::write`]).
#[derive(Debug, Default)]
pub struct StaleElements {
    max_age_seconds: f64,
    /// Per element, together so that following a write reads one cache line of them.
    slots: Vec<ElementSlot>,
    /// The stale elements, in scene order (listing them must not go through every element).
    stale_list: BTreeSet<u32>,
    /// Fresh, written elements by when they go stale, soonest first: at most one current entry
    /// per element (`ElementSlot::due_at`), so the queue stays within the element count under
    /// any write rate. An entry whose element was written again since is moved on when it
    /// comes up.
    due: BinaryHeap<Reverse<Due>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct ElementSlot {
    /// When the element's twin was last written (milliseconds since the Unix epoch).
    written: Option<f64>,
    /// The time of the element's current entry in `due`, if it has one.
    due_at: Option<f64>,
    stale: bool,
}

#[derive(Debug, Clone, Copy)]
struct Due {
    at: f64,
    element: u32,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.total_cmp(&other.at).then(self.element.cmp(&other.element))
    }
}

impl StaleElements {
    /// Staleness at `now` of elements whose twins were last written at `written` (one entry per
    /// element, in scene order).
    pub fn new(written: Vec<Option<f64>>, max_age_seconds: f64, now: f64) -> Self {
        let mut slots = Vec::with_capacity(written.len());
        let mut stale_list = BTreeSet::new();
        let mut due = Vec::new();
        for (element, time) in written.into_iter().enumerate() {
            let mut slot = ElementSlot { written: time, ..ElementSlot::default() };
            if let Some(time) = time {
                if is_stale(Some(time), now, max_age_seconds) {
                    slot.stale = true;
                    stale_list.insert(element as u32);
                } else {
                    let at = stale_from(time, max_age_seconds);
                    slot.due_at = Some(at);
                    due.push(Reverse(Due { at, element: element as u32 }));
                }
            }
            slots.push(slot);
        }
        // The queue is built in one go (linear), not pushed one by one.
        Self { max_age_seconds, slots, stale_list, due: BinaryHeap::from(due) }
    }

    pub fn max_age_seconds(&self) -> f64 {
        self.max_age_seconds
    }

    /// How many elements this follows.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn is_stale(&self, element: usize) -> bool {
        self.slots.get(element).is_some_and(|slot| slot.stale)
    }

    /// How many elements are stale.
    pub fn stale_count(&self) -> usize {
        self.stale_list.len()
    }

    /// The stale elements, in scene order.
    pub fn stale_elements(&self) -> impl Iterator<Item = usize> + '_ {
        self.stale_list.iter().map(|&element| element as usize)
    }

    /// Element `element`'s twin was written and its newest write is now `written`; appends the
    /// element to `flipped` if that changed its staleness at `now`.
    pub fn write(&mut self, element: usize, written: Option<f64>, now: f64, flipped: &mut Vec<usize>) {
        let Some(slot) = self.slots.get_mut(element) else { return };
        slot.written = written;
        let stale = is_stale(written, now, self.max_age_seconds);
        if let (false, Some(time)) = (stale, written) {
            let at = stale_from(time, self.max_age_seconds);
            // A later due time is taken up when the current entry comes up; an earlier one (an
            // older timestamp than before) needs an entry of its own.
            if slot.due_at.is_none_or(|current| at < current) {
                slot.due_at = Some(at);
                self.due.push(Reverse(Due { at, element: element as u32 }));
            }
        }
        self.set_stale(element, stale, flipped);
    }

    /// Moves the clock to `now`: elements whose data became too old turn stale (appended to
    /// `flipped`).
    pub fn advance(&mut self, now: f64, flipped: &mut Vec<usize>) {
        while let Some(&Reverse(Due { at, element })) = self.due.peek()
            && now > at
        {
            self.due.pop();
            let element = element as usize;
            let slot = &mut self.slots[element];
            // An entry replaced by an earlier one (see `write`) is left behind; skip it.
            if slot.due_at != Some(at) {
                continue;
            }
            slot.due_at = None;
            let Some(time) = slot.written else { continue };
            if is_stale(Some(time), now, self.max_age_seconds) {
                self.set_stale(element, true, flipped);
            } else {
                // Written again since this entry was made: due later.
                let at = stale_from(time, self.max_age_seconds);
                slot.due_at = Some(at);
                self.due.push(Reverse(Due { at, element: element as u32 }));
            }
        }
    }

    fn set_stale(&mut self, element: usize, stale: bool, flipped: &mut Vec<usize>) {
        let slot = &mut self.slots[element];
        if slot.stale == stale {
            return;
        }
        slot.stale = stale;
        if stale {
            self.stale_list.insert(element as u32);
        } else {
            self.stale_list.remove(&(element as u32));
        }
        flipped.push(element);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn twin_with_times(times: &[(&str, &str)]) -> Twin {
        let mut twin = Twin::new("t", "dtmi:t:T;1");
        for (property, time) in times {
            twin.last_update_time.insert(*property, crate::twin::CompactString::from(*time));
        }
        twin
    }

    #[test]
    fn newest_readable_timestamp_wins() {
        let twin = twin_with_times(&[
            ("a", "2026-01-01T00:00:00Z"),
            ("b", "2026-01-01T00:01:00Z"),
            ("c", "not a time"),
        ]);
        let a = parse_rfc3339_millis("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(last_update_millis(&twin), Some(a + 60_000.0));
        assert_eq!(last_update_millis(&twin_with_times(&[])), None);
    }

    #[test]
    fn stale_only_after_the_configured_age() {
        let written = 1_000_000.0;
        assert!(!is_stale(Some(written), written + 59_999.0, 60.0));
        assert!(is_stale(Some(written), written + 60_001.0, 60.0));
    }

    #[test]
    fn never_written_twins_are_not_stale() {
        assert!(!is_stale(None, 1e15, 1.0));
        let twin = twin_with_times(&[("temperature", "2026-01-01T00:00:00Z")]);
        let written = parse_rfc3339_millis("2026-01-01T00:00:00Z").unwrap();
        assert!(twin_is_stale(&twin, written + 2_000.0, 1.0));
        assert!(!twin_is_stale(&twin_with_times(&[]), written + 2_000.0, 1.0));
    }

    /// What a look at every element finds: the stale elements at `now`.
    fn stale_by_looking(written: &[Option<f64>], now: f64, max_age: f64) -> Vec<usize> {
        (0..written.len()).filter(|&e| is_stale(written[e], now, max_age)).collect()
    }

    #[test]
    fn elements_turn_stale_when_due_and_fresh_when_written() {
        let mut flipped = Vec::new();
        let mut elements = StaleElements::new(vec![Some(0.0), None, Some(5_000.0)], 10.0, 1_000.0);
        assert_eq!(elements.stale_count(), 0);
        elements.advance(10_000.0, &mut flipped);
        assert!(flipped.is_empty(), "exactly at the limit is not yet stale");
        elements.advance(10_001.0, &mut flipped);
        assert_eq!(flipped, [0]);
        assert!(elements.is_stale(0) && !elements.is_stale(1) && !elements.is_stale(2));
        flipped.clear();
        elements.write(0, Some(10_001.0), 10_001.0, &mut flipped);
        assert_eq!(flipped, [0]);
        assert_eq!(elements.stale_count(), 0);
        flipped.clear();
        // Element 2 was written again before it was due: it goes stale from the newer write.
        elements.write(2, Some(9_000.0), 9_000.0, &mut flipped);
        elements.advance(15_001.0, &mut flipped);
        assert!(flipped.is_empty());
        elements.advance(19_001.0, &mut flipped);
        assert_eq!(flipped, [2]);
        assert_eq!(elements.stale_elements().collect::<Vec<_>>(), [2]);
        // Never written stays fresh, whatever the time.
        assert!(!elements.is_stale(1));
    }

    #[test]
    fn data_already_old_when_written_is_stale_at_once() {
        let mut flipped = Vec::new();
        let mut elements = StaleElements::new(vec![Some(0.0), Some(100_000.0)], 10.0, 100_000.0);
        assert_eq!(elements.stale_elements().collect::<Vec<_>>(), [0]);
        elements.write(1, Some(50_000.0), 100_000.0, &mut flipped);
        assert_eq!(flipped, [1]);
        flipped.clear();
        // A write whose newest time went back (an older timestamp) is due at the older time.
        elements.write(1, Some(95_000.0), 100_000.0, &mut flipped);
        elements.write(1, Some(91_000.0), 100_000.0, &mut flipped);
        assert_eq!(flipped, [1]);
        flipped.clear();
        elements.advance(101_001.0, &mut flipped);
        assert_eq!(flipped, [1]);
    }

    proptest::proptest! {
        /// After any writes and clock moves, the tracked staleness is what a look at every
        /// element finds, and the flips reported are exactly the elements that changed.
        #[test]
        fn agrees_with_a_look_at_every_element(
            initial in proptest::collection::vec(proptest::option::of(0u32..50), 1..12),
            steps in proptest::collection::vec((0usize..12, proptest::option::of(0u32..80), 0u32..5), 0..60),
        ) {
            let max_age = 10.0;
            let mut written: Vec<Option<f64>> =
                initial.iter().map(|t| t.map(|t| f64::from(t) * 1000.0)).collect();
            let mut now = 20_000.0;
            let mut elements = StaleElements::new(written.clone(), max_age, now);
            let mut flipped = Vec::new();
            let mut before = stale_by_looking(&written, now, max_age);
            for (element, time, wait) in steps {
                let element = element % written.len();
                flipped.clear();
                if wait == 0 {
                    let time = time.map(|t| f64::from(t) * 500.0);
                    written[element] = time;
                    elements.write(element, time, now, &mut flipped);
                } else {
                    // Whole and odd times: due times fall on, just before and just after ticks.
                    now += f64::from(wait) * 999.5;
                    elements.advance(now, &mut flipped);
                }
                let after = stale_by_looking(&written, now, max_age);
                proptest::prop_assert_eq!(elements.stale_elements().collect::<Vec<_>>(), after.clone());
                proptest::prop_assert_eq!(elements.stale_count(), after.len());
                let mut changed: Vec<usize> = (0..written.len())
                    .filter(|e| before.contains(e) != after.contains(e))
                    .collect();
                let mut reported = flipped.clone();
                reported.sort_unstable();
                changed.sort_unstable();
                proptest::prop_assert_eq!(reported, changed);
                before = after;
            }
        }
    }

    /// A time kept from one twin is the same time for the next: reading many twins in a row
    /// gives what reading each alone gives.
    #[test]
    fn update_times_agree_with_parsing_each_twin() {
        let twins = [
            twin_with_times(&[("a", "2026-01-01T00:00:00Z"), ("b", "2026-01-01T00:01:00Z")]),
            twin_with_times(&[("a", "2026-01-01T00:01:00Z"), ("c", "not a time")]),
            twin_with_times(&[("c", "not a time")]),
            twin_with_times(&[]),
            twin_with_times(&[("a", "2026-01-01T00:01:00Z")]),
        ];
        let mut times = UpdateTimes::default();
        for twin in &twins {
            assert_eq!(times.newest(twin), last_update_millis(twin));
        }
    }
}
