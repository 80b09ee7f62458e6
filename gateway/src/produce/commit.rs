//! Group commit for atomic requests: each transaction costs the broker the same whatever it
//! holds (markers on every partition, two writes to the transaction log), so requests that
//! arrive while transactions run are written together in the next one.
//!
//! One committer per transactional producer takes the first waiting request and every other
//! one already waiting (up to [`MAX_GROUP_RECORDS`]), writes them in one transaction and answers
//! each. A group fails as a whole; its requests are then written again one transaction each, so
//! a request is never refused for another's record.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::{Prepared, write_in};
use crate::kafka::producer::ProduceError;
use crate::kafka::topics::Topics;
use crate::kafka::transactions::Transactions;

/// Most records in one group's transaction.
const MAX_GROUP_RECORDS: usize = 10_000;
/// Requests waiting for a committer; beyond it, a request waits to be queued.
const QUEUE: usize = 1024;

type Reply = oneshot::Sender<(Vec<Prepared>, Result<(), ProduceError>)>;

struct Job {
    batches: Vec<Prepared>,
    reply: Reply,
}

/// The committers' queue.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts `committers` committers (one per transactional producer).
    pub fn start(transactions: Arc<Transactions>, topics: Arc<Topics>, committers: usize) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let jobs = Arc::new(Mutex::new(jobs));
        for _ in 0..committers.max(1) {
            tokio::spawn(committer(jobs.clone(), transactions.clone(), topics.clone()));
        }
        Self { queue }
    }

    /// Writes `batches` atomically, with whatever else is waiting; hands them back.
    pub async fn write(&self, batches: Vec<Prepared>) -> (Vec<Prepared>, Result<(), ProduceError>) {
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = self.queue.send(Job { batches, reply }).await {
            return (job.batches, Err(ProduceError::Unavailable("the gateway is shutting down".into())));
        }
        answer.await.unwrap_or_else(|_| (Vec::new(), Err(ProduceError::Unavailable("the committer stopped".into()))))
    }
}

async fn committer(jobs: Arc<Mutex<mpsc::Receiver<Job>>>, transactions: Arc<Transactions>, topics: Arc<Topics>) {
    loop {
        let group = {
            let mut jobs = jobs.lock().await;
            let Some(first) = jobs.recv().await else { return };
            let mut records = records(&first);
            let mut group = vec![first];
            while records < MAX_GROUP_RECORDS {
                match jobs.try_recv() {
                    Ok(job) => {
                        records += self::records(&job);
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
            group
        };
        run(group, &transactions, &topics).await;
    }
}

fn records(job: &Job) -> usize {
    job.batches.iter().map(Prepared::record_count).sum()
}

/// Writes a group in one transaction. If anything in it failed after the transaction began,
/// each job is written again in a transaction of its own (all at once): a refused record makes
/// librdkafka purge the others, so which job caused the failure is not always known.
async fn run(group: Vec<Job>, transactions: &Arc<Transactions>, topics: &Topics) {
    let sizes: Vec<usize> = group.iter().map(|job| job.batches.len()).collect();
    let (mut batches, replies): (Vec<Vec<Prepared>>, Vec<Reply>) =
        group.into_iter().map(|job| (job.batches, job.reply)).unzip();
    let mut all: Vec<Prepared> = batches.iter_mut().flat_map(std::mem::take).collect();
    let (result, began) = transaction(transactions, topics, &mut all).await;
    let alone = replies.len() > 1 && began && result.is_err();
    let mut all = all.into_iter();
    let jobs: Vec<(Vec<Prepared>, Reply)> =
        sizes.into_iter().zip(replies).map(|(size, reply)| (all.by_ref().take(size).collect(), reply)).collect();
    if !alone {
        for (batches, reply) in jobs {
            let _ = reply.send((batches, result.clone()));
        }
        return;
    }
    futures::future::join_all(jobs.into_iter().map(|(mut batches, reply)| async move {
        let (result, _) = transaction(transactions, topics, &mut batches).await;
        let _ = reply.send((batches, result));
    }))
    .await;
}

/// One transaction over `batches`; says whether it began at all. Records purged with no
/// failure of their own (a producer whose previous transaction was aborted for a refused
/// record can still purge the first records of its next one) are written again, twice at most.
async fn transaction(
    transactions: &Arc<Transactions>,
    topics: &Topics,
    batches: &mut [Prepared],
) -> (Result<(), ProduceError>, bool) {
    let mut attempts = 0;
    loop {
        let tx = match transactions.begin().await {
            Ok(tx) => tx,
            Err(error) => return (Err(error), attempts > 0),
        };
        attempts += 1;
        let result = match write_in(&tx, topics, batches).await {
            Ok(()) => tx.commit().await,
            Err(error) => {
                tx.abort().await;
                Err(error)
            }
        };
        if result != Err(ProduceError::Purged) || attempts == 3 {
            return (result, true);
        }
    }
}
