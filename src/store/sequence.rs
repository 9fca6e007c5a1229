//! Seq allocation shared by the backends: which sequences a write needs, in
//! which order to lock them, and which seq each log gets.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use crate::model::{LevelCounts, NewLog, Owner, Receipt, SYSTEM_SEQUENCE, activity_at};

/// What one write needs of one sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Demand {
    pub count: i64,
    pub earliest: DateTime<Utc>,
    pub latest: DateTime<Utc>,
    pub levels: LevelCounts,
    /// When its last log was received.
    pub last_received: DateTime<Utc>,
}

fn sequence_of(log: &NewLog) -> Uuid {
    log.owner.job_run_id().unwrap_or(SYSTEM_SEQUENCE)
}

/// Every sequence the batches write to.
pub(super) fn sequences(batches: &[&[NewLog]]) -> BTreeSet<Uuid> {
    batches.iter().flat_map(|batch| batch.iter().map(sequence_of)).collect()
}

/// A log already stored under a client's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StoredId {
    pub receipt: Receipt,
    pub owner: Owner,
}

/// Why a batch of a group is refused whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// It writes a new log to this completed job run.
    JobRunComplete(Uuid),
    /// It reuses this id for a log of another job run, task run or type.
    IdTaken(Uuid),
}

/// What becomes of one log of an accepted batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placement {
    /// Stored now, as `accepted[index]`.
    New(usize),
    /// A resend of `accepted[index]`, which this group stores.
    SameAs(usize),
    /// A resend of a log stored before.
    Stored(Receipt),
}

/// How one batch of a group fares.
pub(super) type BatchPlan = Result<Vec<Placement>, Refusal>;

/// Which logs of a group are stored, and what each batch is answered, given
/// the runs that are complete and the client ids already stored. A resend is
/// answered with the stored log and stores nothing, even in a completed run.
pub(super) fn plan<'a>(
    batches: &[&'a [NewLog]],
    completed: &BTreeSet<Uuid>,
    stored: &HashMap<Uuid, StoredId>,
) -> (Vec<&'a NewLog>, Vec<BatchPlan>) {
    let mut accepted: Vec<&NewLog> = Vec::new();
    let mut in_group: HashMap<Uuid, usize> = HashMap::new();
    let plans = batches
        .iter()
        .map(|batch| {
            let mut placements = Vec::with_capacity(batch.len());
            let mut new_logs = Vec::new();
            let mut in_batch: HashMap<Uuid, usize> = HashMap::new();
            for log in batch.iter() {
                let earlier = log.client_id.then(|| stored.get(&log.id)).flatten();
                let placement = if let Some(earlier) = earlier {
                    if earlier.owner != log.owner {
                        return Err(Refusal::IdTaken(log.id));
                    }
                    Placement::Stored(Receipt { duplicate: true, ..earlier.receipt })
                } else if let Some(&index) = in_group.get(&log.id).or(in_batch.get(&log.id)) {
                    let first =
                        if index < accepted.len() { accepted.get(index) } else { new_logs.get(index - accepted.len()) };
                    if first.map(|first| first.owner) != Some(log.owner) {
                        return Err(Refusal::IdTaken(log.id));
                    }
                    Placement::SameAs(index)
                } else {
                    let index = accepted.len() + new_logs.len();
                    in_batch.insert(log.id, index);
                    new_logs.push(log);
                    Placement::New(index)
                };
                placements.push(placement);
            }
            if let Some(run) = new_logs.iter().map(|log| sequence_of(log)).find(|run| completed.contains(run)) {
                return Err(Refusal::JobRunComplete(run));
            }
            in_group.extend(in_batch);
            accepted.extend(new_logs);
            Ok(placements)
        })
        .collect();
    (accepted, plans)
}

/// Each batch's answer, from its plan and the receipts of the accepted logs.
pub(super) fn answers(plans: Vec<BatchPlan>, receipts: &[Receipt]) -> Vec<Result<Vec<Receipt>, StoreError>> {
    plans
        .into_iter()
        .map(|plan| match plan {
            Ok(placements) => Ok(placements
                .into_iter()
                .map(|placement| match placement {
                    Placement::New(index) => receipts[index],
                    Placement::SameAs(index) => Receipt { duplicate: true, ..receipts[index] },
                    Placement::Stored(receipt) => receipt,
                })
                .collect()),
            Err(Refusal::JobRunComplete(run)) => Err(StoreError::JobRunComplete(run)),
            Err(Refusal::IdTaken(id)) => Err(StoreError::IdTaken(id)),
        })
        .collect()
}

/// The client ids of a group, which may name logs stored before.
pub(super) fn client_ids(batches: &[&[NewLog]]) -> Vec<Uuid> {
    batches.iter().flat_map(|batch| batch.iter().filter(|log| log.client_id).map(|log| log.id)).collect()
}

/// What each sequence needs. Sorted by key: every writer locks sequences in
/// the same order, so two transactions that touch the same runs cannot
/// deadlock.
pub(super) fn demand(logs: &[&NewLog]) -> BTreeMap<Uuid, Demand> {
    let mut demand = BTreeMap::new();
    for log in logs {
        demand
            .entry(sequence_of(log))
            .or_insert(Demand {
                count: 0,
                earliest: log.time,
                latest: log.time,
                levels: LevelCounts::default(),
                last_received: log.received_at,
            })
            .add(log);
    }
    demand
}

impl Demand {
    fn add(&mut self, log: &NewLog) {
        self.count += 1;
        self.earliest = self.earliest.min(log.time);
        self.latest = self.latest.max(log.time);
        self.levels.add(log.level);
        self.last_received = self.last_received.max(log.received_at);
    }

    /// The run's activity that this write makes: its last log's receipt, to
    /// the second.
    pub fn active_at(&self) -> DateTime<Utc> {
        activity_at(self.last_received)
    }
}

/// The first seq reserved for each sequence, in the demand's order, from
/// what the allocating statement returned (`id`, next free seq, already
/// complete). A run found complete here fails the whole group, and each
/// batch is retried alone.
pub(super) fn firsts(
    demand: &BTreeMap<Uuid, Demand>,
    allocated: Vec<(Uuid, i64, bool)>,
) -> Result<Vec<i64>, StoreError> {
    let mut starts = BTreeMap::new();
    for (sequence, next, completed) in allocated {
        if completed {
            return Err(StoreError::JobRunComplete(sequence));
        }
        let count = demand
            .get(&sequence)
            .map(|wanted| wanted.count)
            .ok_or(StoreError::Internal("allocated an unknown sequence"))?;
        starts.insert(sequence, next - count);
    }
    if starts.len() != demand.len() {
        return Err(StoreError::Internal("a sequence got no seqs"));
    }
    Ok(starts.into_values().collect())
}

/// Where each log's seq comes from: its sequence's position among the
/// demand's sequences (counting from 1, as SQL arrays do) and how many logs
/// of that sequence come before it in the write.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Slots {
    pub positions: Vec<i32>,
    pub offsets: Vec<i64>,
}

pub(super) fn slots(logs: &[&NewLog], demand: &BTreeMap<Uuid, Demand>) -> Slots {
    let mut taken: BTreeMap<Uuid, (i32, i64)> =
        (1..).zip(demand.keys()).map(|(position, id)| (*id, (position, 0))).collect();
    let mut slots = Slots::default();
    for log in logs {
        let (position, offset) = taken.entry(sequence_of(log)).or_insert((0, 0));
        slots.positions.push(*position);
        slots.offsets.push(*offset);
        *offset += 1;
    }
    slots
}

impl Slots {
    /// Each log's seq, given the first seq reserved for each sequence, in
    /// the demand's order.
    pub fn seqs(&self, firsts: &[i64]) -> Result<Vec<i64>, StoreError> {
        self.positions
            .iter()
            .zip(&self.offsets)
            .map(|(position, offset)| {
                let first = usize::try_from(*position - 1).ok().and_then(|index| firsts.get(index));
                first.map(|first| first + offset).ok_or(StoreError::Internal("a log's sequence got no seqs"))
            })
            .collect()
    }
}

/// What the store tells the writer of each log, once committed.
pub(super) fn receipts(logs: &[&NewLog], seqs: Vec<i64>) -> Vec<Receipt> {
    logs.iter()
        .zip(seqs)
        .map(|(log, seq)| Receipt { id: log.id, seq, received_at: log.received_at, duplicate: false })
        .collect()
}

/// What a notification on the commits channel says.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Notification {
    /// This replica changed these sequences (`None`: too many to name).
    /// `appended_by`: the change was logs appended by the transaction with
    /// this id, which reads in commit order show; `None` for any other
    /// change (a completion, a deletion).
    From { replica: Uuid, sequences: Option<Vec<Uuid>>, appended_by: Option<i64> },
    /// Not a notification logwell sent; treat it as "anything may have changed".
    Unreadable,
}

/// What the notification of a change to `sequences` is made from:
/// `replica:id,id,…`, or `replica:*` (all of them) when the ids would not
/// fit. An append's is `replica@%s:…`, where the database writes its
/// transaction's id for `%s` (`format`), so that no round trip asks for it.
pub(super) fn notification_template(replica: Uuid, sequences: impl Iterator<Item = Uuid>, append: bool) -> String {
    // PostgreSQL refuses payloads of 8,000 bytes or more; a transaction id
    // takes 20 at most.
    const MAX_PAYLOAD: usize = 7_900;
    let ids: Vec<String> = sequences.map(|id| id.to_string()).collect();
    let sender = if append { format!("{replica}@%s") } else { replica.to_string() };
    let payload = format!("{sender}:{}", ids.join(","));
    if payload.len() > MAX_PAYLOAD { format!("{sender}:*") } else { payload }
}

pub(super) fn parse_notification(payload: &str) -> Notification {
    let parsed = payload.split_once(':').and_then(|(sender, ids)| {
        let (replica, appended_by) = match sender.split_once('@') {
            Some((replica, transaction)) => (replica, Some(transaction.parse().ok()?)),
            None => (sender, None),
        };
        let replica = Uuid::try_parse(replica).ok()?;
        if ids == "*" {
            return Some(Notification::From { replica, sequences: None, appended_by });
        }
        let ids: Option<Vec<Uuid>> = ids.split(',').map(|id| Uuid::try_parse(id).ok()).collect();
        Some(Notification::From { replica, sequences: Some(ids?), appended_by })
    });
    parsed.unwrap_or(Notification::Unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LogDraft, LogType};

    fn log(job_run_id: Option<Uuid>, seconds: i64) -> NewLog {
        let (log_type, job_run_id) = match job_run_id {
            Some(id) => (LogType::Job, id.to_string()),
            None => (LogType::System, String::new()),
        };
        let time = DateTime::from_timestamp(seconds, 0);
        LogDraft { job_run_id, time, message: "m".into(), ..LogDraft::default() }
            .validate(log_type, Utc::now(), &crate::model::Limits::default())
            .unwrap()
    }

    #[test]
    fn seqs_follow_request_order_within_each_sequence() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let logs = [log(Some(a), 5), log(Some(b), 1), log(None, 1), log(Some(a), 3), log(Some(b), 9)];
        let logs: Vec<&NewLog> = logs.iter().collect();
        let wanted = demand(&logs);
        let counts: Vec<(Uuid, i64)> = wanted.iter().map(|(id, demand)| (*id, demand.count)).collect();
        assert_eq!(counts, [(SYSTEM_SEQUENCE, 1), (a, 2), (b, 2)]);
        assert_eq!((wanted[&a].earliest.timestamp(), wanted[&a].latest.timestamp()), (3, 5));
        let slots = slots(&logs, &wanted);
        assert_eq!(slots.positions, [2, 3, 1, 2, 3], "SQL arrays count from 1");
        assert_eq!(slots.offsets, [0, 0, 0, 1, 1]);
        assert_eq!(slots.seqs(&[7, 1, 40]).unwrap(), [1, 40, 7, 2, 41]);
        assert!(slots.seqs(&[7, 1]).is_err(), "a sequence without seqs is a bug, not a panic");
    }

    #[test]
    fn batches_touching_a_completed_run_are_refused_whole() {
        let (open, done) = (Uuid::now_v7(), Uuid::now_v7());
        let first = [log(Some(open), 1), log(Some(open), 2)];
        let second = [log(Some(open), 3), log(Some(done), 4)];
        let third = [log(None, 5)];
        let batches: [&[NewLog]; 3] = [&first, &second, &third];
        assert_eq!(sequences(&batches), BTreeSet::from([SYSTEM_SEQUENCE, open, done]));
        let (accepted, plans) = plan(&batches, &BTreeSet::from([done]), &HashMap::new());
        assert_eq!(accepted.len(), 3);
        assert_eq!(
            plans,
            [
                Ok(vec![Placement::New(0), Placement::New(1)]),
                Err(Refusal::JobRunComplete(done)),
                Ok(vec![Placement::New(2)])
            ]
        );
        let receipts = receipts(&accepted, vec![1, 2, 1]);
        let answers = answers(plans, &receipts);
        assert_eq!(answers[0].as_ref().map(Vec::len).ok(), Some(2));
        assert!(matches!(answers[1], Err(StoreError::JobRunComplete(run)) if run == done));
        assert_eq!(answers[2].as_ref().map(|receipts| receipts[0].seq).ok(), Some(1));
    }

    fn resend(log: &NewLog) -> NewLog {
        NewLog { client_id: true, ..log.clone() }
    }

    #[test]
    fn resends_are_answered_with_the_stored_log_and_store_nothing() {
        let (run, done) = (Uuid::now_v7(), Uuid::now_v7());
        let before = resend(&log(Some(done), 1));
        let stored = HashMap::from([(
            before.id,
            StoredId {
                receipt: Receipt { id: before.id, seq: 7, received_at: before.received_at, duplicate: false },
                owner: before.owner,
            },
        )]);
        let fresh = resend(&log(Some(run), 2));
        let first = [before.clone(), fresh.clone()];
        let second = [fresh.clone()];
        let batches: [&[NewLog]; 2] = [&first, &second];
        let (accepted, plans) = plan(&batches, &BTreeSet::from([done]), &stored);
        assert_eq!(accepted.len(), 1, "only the new log is stored, though its twin came twice");
        let answers = answers(plans, &receipts(&accepted, vec![1]));
        let first: Vec<(i64, bool)> = answers[0].as_ref().unwrap().iter().map(|r| (r.seq, r.duplicate)).collect();
        assert_eq!(first, [(7, true), (1, false)], "a resend into a completed run is still just a resend");
        let second: Vec<(i64, bool)> = answers[1].as_ref().unwrap().iter().map(|r| (r.seq, r.duplicate)).collect();
        assert_eq!(second, [(1, true)]);

        let thief = NewLog { id: before.id, ..resend(&log(Some(run), 3)) };
        let (_, plans) = plan(&[&[thief]], &BTreeSet::new(), &stored);
        assert_eq!(plans, [Err(Refusal::IdTaken(before.id))]);
    }

    #[test]
    fn notifications_name_their_replica_sequences_and_appending_transaction() {
        let replica = Uuid::new_v4();
        let ids = [Uuid::now_v7(), Uuid::now_v7()];
        let payload = notification_template(replica, ids.into_iter(), false);
        let completion = Notification::From { replica, sequences: Some(ids.to_vec()), appended_by: None };
        assert_eq!(parse_notification(&payload), completion);
        // What `format` makes of an append's template in transaction 4711.
        let payload = notification_template(replica, ids.into_iter(), true).replace("%s", "4711");
        let append = Notification::From { replica, sequences: Some(ids.to_vec()), appended_by: Some(4711) };
        assert_eq!(parse_notification(&payload), append);
        let many = notification_template(replica, (0..300).map(|_| Uuid::now_v7()), true);
        assert_eq!(many, format!("{replica}@%s:*"));
        let many = many.replace("%s", &i64::MAX.to_string());
        let some = Notification::From { replica, sequences: None, appended_by: Some(i64::MAX) };
        assert_eq!(parse_notification(&many), some);
        assert_eq!(parse_notification("garbage"), Notification::Unreadable);
        assert_eq!(parse_notification(&format!("{replica}@x:*")), Notification::Unreadable);
    }
}
