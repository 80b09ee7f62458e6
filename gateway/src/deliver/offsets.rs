//! Which offsets a subscription may commit: only below the lowest record without an outcome.
//!
//! Records are taken from Kafka in offset order per partition and finish in any order (other
//! keys go ahead of a slow one). A partition's commit position is the lowest offset still
//! waiting, or one past the highest seen when nothing waits: whoever takes the partition next
//! resumes there, so a record without an outcome is delivered again, never skipped. Pure: the
//! consumer stage feeds it and commits what it answers.

use std::collections::{BTreeSet, HashMap};

/// A topic and one of its partitions.
pub type TopicPartition = (String, i32);

/// Offsets seen, waiting and committed, per partition this replica holds.
#[derive(Debug, Default)]
pub struct Offsets {
    partitions: HashMap<TopicPartition, PartitionState>,
}

#[derive(Debug)]
struct PartitionState {
    /// Records taken and without an outcome.
    pending: BTreeSet<i64>,
    /// One past the highest offset taken (or where consumption starts).
    next: i64,
    /// What was last committed (or the position the partition was assigned at).
    committed: i64,
}

impl PartitionState {
    fn safe(&self) -> i64 {
        self.pending.first().copied().unwrap_or(self.next)
    }
}

impl Offsets {
    /// A partition assigned to this replica, whose consumption starts at `from` (the group's
    /// committed offset, or the start position committed for it).
    pub fn assigned(&mut self, partition: TopicPartition, from: i64) {
        self.partitions.insert(partition, PartitionState { pending: BTreeSet::new(), next: from, committed: from });
    }

    /// Whether this replica holds the partition.
    pub fn owns(&self, partition: &TopicPartition) -> bool {
        self.partitions.contains_key(partition)
    }

    /// A record taken from Kafka. A partition not yet known starts at it.
    pub fn taken(&mut self, partition: &TopicPartition, offset: i64) {
        let state = match self.partitions.get_mut(partition) {
            Some(state) => state,
            None => self.partitions.entry(partition.clone()).or_insert(PartitionState {
                pending: BTreeSet::new(),
                next: offset,
                committed: offset,
            }),
        };
        state.pending.insert(offset);
        state.next = state.next.max(offset + 1);
    }

    /// A record has its outcome (delivered, skipped, dropped or dead-lettered).
    pub fn done(&mut self, partition: &TopicPartition, offset: i64) {
        if let Some(state) = self.partitions.get_mut(partition) {
            state.pending.remove(&offset);
        }
    }

    /// Records taken and without an outcome, across partitions.
    pub fn waiting(&self) -> usize {
        self.partitions.values().map(|s| s.pending.len()).sum()
    }

    /// The positions that may be committed now (of `only` these partitions, when given), each
    /// marked as committed.
    pub fn committable(&mut self, only: Option<&[TopicPartition]>) -> Vec<(TopicPartition, i64)> {
        let mut out = Vec::new();
        for (partition, state) in &mut self.partitions {
            if only.is_some_and(|only| !only.contains(partition)) {
                continue;
            }
            let safe = state.safe();
            if safe > state.committed {
                state.committed = safe;
                out.push((partition.clone(), safe));
            }
        }
        out
    }

    /// A commit of these positions failed: they are offered again next time.
    pub fn commit_failed(&mut self, positions: &[(TopicPartition, i64)]) {
        for (partition, offset) in positions {
            if let Some(state) = self.partitions.get_mut(partition) {
                state.committed = state.committed.min(offset - 1);
            }
        }
    }

    /// Partitions taken away: their committable positions (to commit before they go), and
    /// they are forgotten.
    pub fn revoked(&mut self, partitions: &[TopicPartition]) -> Vec<(TopicPartition, i64)> {
        let out = self.committable(Some(partitions));
        for partition in partitions {
            self.partitions.remove(partition);
        }
        out
    }

    /// Every partition held now.
    pub fn held(&self) -> Vec<TopicPartition> {
        self.partitions.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use super::*;
    use crate::testing::Rng;

    fn tp(p: i32) -> TopicPartition {
        ("t".to_owned(), p)
    }

    #[test]
    fn commits_stop_at_the_lowest_record_without_an_outcome() {
        let mut offsets = Offsets::default();
        offsets.assigned(tp(0), 10);
        for o in 10..15 {
            offsets.taken(&tp(0), o);
        }
        assert!(offsets.committable(None).is_empty(), "nothing finished");
        offsets.done(&tp(0), 11);
        offsets.done(&tp(0), 12);
        assert!(offsets.committable(None).is_empty(), "10 is still waiting");
        offsets.done(&tp(0), 10);
        assert_eq!(offsets.committable(None), [(tp(0), 13)]);
        assert!(offsets.committable(None).is_empty(), "already committed");
        offsets.done(&tp(0), 13);
        offsets.done(&tp(0), 14);
        assert_eq!(offsets.committable(None), [(tp(0), 15)]);
    }

    #[test]
    fn a_failed_commit_is_offered_again_and_revocation_hands_over_the_position() {
        let mut offsets = Offsets::default();
        offsets.assigned(tp(1), 0);
        offsets.taken(&tp(1), 0);
        offsets.done(&tp(1), 0);
        let first = offsets.committable(None);
        offsets.commit_failed(&first);
        assert_eq!(offsets.committable(None), first);
        offsets.taken(&tp(1), 1);
        offsets.taken(&tp(1), 2);
        offsets.done(&tp(1), 2);
        assert_eq!(offsets.revoked(&[tp(1)]), [], "1 has no outcome; 1 was committed");
        assert!(!offsets.owns(&tp(1)));
    }

    /// Under random completion orders, commits, failed commits and rebalances (a revoked
    /// partition is later assigned again from its committed position and its records taken
    /// again), a committed position never passes a record without an outcome.
    #[test]
    fn property_the_committed_position_never_passes_a_record_without_an_outcome() {
        for seed in 0..300 {
            let mut rng = Rng::new(seed);
            let mut offsets = Offsets::default();
            let partitions = 1 + rng.below(3) as i32;
            let mut log_end: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
            // Ground truth: records with an outcome, and the group's committed position.
            let mut finished: HashSet<(i32, i64)> = HashSet::new();
            let mut group: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
            let mut held: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
            let mut next_take: BTreeMap<i32, i64> = BTreeMap::new();
            for p in 0..partitions {
                offsets.assigned(tp(p), 0);
                held.insert(p, Vec::new());
                next_take.insert(p, 0);
            }
            for _ in 0..400 {
                let p = rng.below(partitions as u64) as i32;
                match rng.below(10) {
                    0..=3 if held.contains_key(&p) => {
                        // Produce and take the next record of p.
                        let end = log_end.get_mut(&p).expect("a partition");
                        let offset = next_take[&p];
                        *end = (*end).max(offset + 1);
                        offsets.taken(&tp(p), offset);
                        held.get_mut(&p).expect("held").push(offset);
                        *next_take.get_mut(&p).expect("held") += 1;
                    }
                    4..=6 => {
                        // Some record in flight gets its outcome.
                        if let Some(waiting) = held.get_mut(&p).filter(|w| !w.is_empty()) {
                            let offset = waiting.remove(rng.below(waiting.len() as u64) as usize);
                            finished.insert((p, offset));
                            offsets.done(&tp(p), offset);
                        }
                    }
                    7 => {
                        let committed = offsets.committable(None);
                        if rng.below(4) == 0 {
                            offsets.commit_failed(&committed);
                        } else {
                            for ((_, q), at) in committed {
                                group.insert(q, at);
                            }
                        }
                    }
                    8 if held.contains_key(&p) => {
                        // Revoked: what is committable is committed, the rest is abandoned.
                        for ((_, q), at) in offsets.revoked(&[tp(p)]) {
                            group.insert(q, at);
                        }
                        held.remove(&p);
                    }
                    9 if !held.contains_key(&p) => {
                        // Assigned again: consumption resumes from the group's position.
                        let from = group[&p];
                        offsets.assigned(tp(p), from);
                        held.insert(p, Vec::new());
                        next_take.insert(p, from);
                    }
                    _ => {}
                }
                for (p, at) in &group {
                    let skipped: Vec<i64> = (0..*at).filter(|o| !finished.contains(&(*p, *o))).collect();
                    assert!(skipped.is_empty(), "seed {seed}: partition {p} committed at {at} past {skipped:?}");
                }
            }
        }
    }
}
