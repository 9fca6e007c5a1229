//! Seq allocation shared by the backends: which sequences a write needs, in
//! which order to lock them, and which seq each log gets.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::model::{NewLog, Receipt};

/// The `job_runs` key of the system logs' own sequence. The model refuses
/// the nil UUID as a job run id, so it cannot collide with a real run.
pub(super) const SYSTEM_SEQUENCE: Uuid = Uuid::nil();

fn sequence_of(log: &NewLog) -> Uuid {
    log.owner.job_run_id().unwrap_or(SYSTEM_SEQUENCE)
}

/// How many seqs each sequence needs. Sorted by key: every writer locks
/// sequences in the same order, so two batches that touch the same runs
/// cannot deadlock.
pub(super) fn demand(logs: &[NewLog]) -> BTreeMap<Uuid, i64> {
    let mut counts = BTreeMap::new();
    for log in logs {
        *counts.entry(sequence_of(log)).or_insert(0) += 1;
    }
    counts
}

/// The seq of each log, in order, given the first seq allocated to each
/// sequence (consumed as the logs take them).
pub(super) fn assign(logs: &[NewLog], mut next: BTreeMap<Uuid, i64>) -> Vec<i64> {
    logs.iter()
        .map(|log| {
            let slot = next.entry(sequence_of(log)).or_insert(1);
            let seq = *slot;
            *slot += 1;
            seq
        })
        .collect()
}

/// What the store tells the writer of each log, once committed.
pub(super) fn receipts(logs: &[NewLog], seqs: Vec<i64>) -> Vec<Receipt> {
    logs.iter().zip(seqs).map(|(log, seq)| Receipt { id: log.id, seq, received_at: log.received_at }).collect()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::model::{LogDraft, LogType};

    fn log(job_run_id: Option<Uuid>) -> NewLog {
        let (log_type, job_run_id) = match job_run_id {
            Some(id) => (LogType::Job, id.to_string()),
            None => (LogType::System, String::new()),
        };
        LogDraft { job_run_id, message: "m".into(), ..LogDraft::default() }.validate(log_type, Utc::now()).unwrap()
    }

    #[test]
    fn seqs_follow_request_order_within_each_sequence() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let logs = [log(Some(a)), log(Some(b)), log(None), log(Some(a)), log(Some(b))];
        let wanted = demand(&logs);
        assert_eq!(wanted, BTreeMap::from([(SYSTEM_SEQUENCE, 1), (a, 2), (b, 2)]));
        let starts = BTreeMap::from([(SYSTEM_SEQUENCE, 7), (a, 1), (b, 40)]);
        assert_eq!(assign(&logs, starts), [1, 40, 7, 2, 41]);
    }
}
