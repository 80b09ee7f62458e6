//! The per-key queues between the consumer and the deliveries: records with the same key (per
//! partition) wait in one queue and only its head is in flight, so a key's events arrive in
//! order while other keys go ahead, up to the subscription's concurrency. In `partition`
//! ordering a partition is one queue; keyless records are each a queue of their own.
//!
//! Pure and generic over the item, so ordering and the buffer's bounds are unit-tested here;
//! the worker feeds it records and starts a delivery for each item [`Queues::next`] hands out.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Records waiting for delivery, by queue.
#[derive(Debug)]
pub struct Queues<K, T> {
    queues: HashMap<K, VecDeque<(T, usize)>>,
    /// Queues whose head is not in flight, in the order they became ready.
    ready: VecDeque<K>,
    in_flight: usize,
    /// Items held (in flight included), and their bytes.
    items: usize,
    bytes: usize,
}

impl<K, T> Default for Queues<K, T> {
    fn default() -> Self {
        Self { queues: HashMap::new(), ready: VecDeque::new(), in_flight: 0, items: 0, bytes: 0 }
    }
}

impl<K: Clone + Eq + Hash, T> Queues<K, T> {
    /// Queues an item of `bytes` bytes behind the others of its key.
    pub fn push(&mut self, key: K, item: T, bytes: usize) {
        let queue = self.queues.entry(key.clone()).or_default();
        if queue.is_empty() {
            self.ready.push_back(key);
        }
        queue.push_back((item, bytes));
        self.items += 1;
        self.bytes += bytes;
    }

    /// The head of the next ready queue, now in flight, while fewer than `concurrency` are;
    /// queues for which `keep` says no are dropped on the way (a revoked partition's).
    pub fn next(&mut self, concurrency: usize, mut keep: impl FnMut(&K) -> bool) -> Option<(K, &T)> {
        while self.in_flight < concurrency {
            let key = self.ready.pop_front()?;
            if !keep(&key) {
                self.remove(&key);
                continue;
            }
            if !self.queues.contains_key(&key) {
                continue;
            }
            self.in_flight += 1;
            let head = self.queues.get(&key).and_then(VecDeque::front).map(|(item, _)| item)?;
            return Some((key, head));
        }
        None
    }

    /// The head of `key`'s queue finished (an outcome, or abandoned): the next item of the key
    /// becomes ready.
    pub fn finished(&mut self, key: &K) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let Some(queue) = self.queues.get_mut(key) else { return };
        if let Some((_, bytes)) = queue.pop_front() {
            self.items -= 1;
            self.bytes -= bytes;
        }
        if queue.is_empty() {
            self.queues.remove(key);
        } else {
            self.ready.push_back(key.clone());
        }
    }

    fn remove(&mut self, key: &K) {
        if let Some(queue) = self.queues.remove(key) {
            self.items -= queue.len();
            self.bytes -= queue.iter().map(|(_, bytes)| bytes).sum::<usize>();
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Items held, in flight included.
    pub fn len(&self) -> usize {
        self.items
    }

    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// Bytes held, in flight included.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::testing::Rng;

    #[test]
    fn one_item_per_key_in_flight_others_go_ahead() {
        let mut queues = Queues::default();
        queues.push("a", 1, 10);
        queues.push("a", 2, 10);
        queues.push("b", 3, 10);
        assert_eq!(queues.next(10, |_| true).map(|(k, v)| (k, *v)), Some(("a", 1)));
        assert_eq!(queues.next(10, |_| true).map(|(k, v)| (k, *v)), Some(("b", 3)));
        assert!(queues.next(10, |_| true).is_none(), "a's second waits for its first");
        queues.finished(&"a");
        assert_eq!(queues.next(10, |_| true).map(|(k, v)| (k, *v)), Some(("a", 2)));
        assert_eq!((queues.len(), queues.bytes(), queues.in_flight()), (2, 20, 2));
    }

    #[test]
    fn concurrency_caps_what_is_in_flight_and_dropped_queues_free_their_bytes() {
        let mut queues = Queues::default();
        for key in 0..5 {
            queues.push(key, key, 100);
        }
        assert!(queues.next(2, |_| true).is_some() && queues.next(2, |_| true).is_some());
        assert!(queues.next(2, |_| true).is_none(), "at the cap");
        assert!(queues.next(10, |k| *k != 2).is_some());
        assert_eq!((queues.len(), queues.bytes()), (4, 400), "key 2 was dropped");
    }

    /// Under random arrivals, completion orders and dropped queues, each key's items start in
    /// the order they were pushed, one at a time, and never more than the concurrency at once.
    #[test]
    fn property_per_key_order_and_concurrency_hold() {
        for seed in 0..300 {
            let mut rng = Rng::new(seed);
            let concurrency = 1 + rng.below(4) as usize;
            let mut queues: Queues<u64, (u64, u64)> = Queues::default();
            let mut pushed: HashMap<u64, u64> = HashMap::new();
            let mut started: HashMap<u64, u64> = HashMap::new();
            let mut flying: Vec<u64> = Vec::new();
            let mut dropped: HashSet<u64> = HashSet::new();
            for _ in 0..500 {
                match rng.below(5) {
                    0 | 1 => {
                        let key = rng.below(6);
                        if dropped.contains(&key) {
                            continue;
                        }
                        let n = pushed.entry(key).or_default();
                        queues.push(key, (key, *n), 1);
                        *n += 1;
                    }
                    2 => {
                        let drop_key = (rng.below(20) == 0).then(|| rng.below(6));
                        if let Some(key) = drop_key.filter(|k| !flying.contains(k)) {
                            dropped.insert(key);
                        }
                        if let Some((key, (item_key, n))) = queues.next(concurrency, |k| !dropped.contains(k)) {
                            assert_eq!(key, *item_key);
                            assert!(!flying.contains(&key), "seed {seed}: key {key} twice in flight");
                            let expected = started.entry(key).or_default();
                            assert_eq!(*n, *expected, "seed {seed}: key {key} out of order");
                            *expected += 1;
                            flying.push(key);
                        }
                    }
                    _ => {
                        if !flying.is_empty() {
                            let key = flying.remove(rng.below(flying.len() as u64) as usize);
                            queues.finished(&key);
                        }
                    }
                }
                assert!(queues.in_flight() <= concurrency, "seed {seed}");
                assert_eq!(queues.in_flight(), flying.len(), "seed {seed}");
            }
        }
    }
}
