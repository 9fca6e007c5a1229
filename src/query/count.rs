//! CountLogs: resolves the time buckets (a range from the filter or the
//! data, a width given or chosen), counts in the store, and keeps the
//! largest groups, summing the rest.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use crate::model::{Buckets, CountRequest, Grouping, MAX_BUCKETS};
use crate::store::{CountRow, LogStore, StoreError};

/// Widths `target_buckets` chooses among, smallest first.
const WIDTHS_SECONDS: &[i64] =
    &[1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200, 86_400, 604_800];

/// The counts of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Counts {
    pub total: i64,
    pub counts: Vec<GroupCount>,
    pub bucket_width: Option<TimeDelta>,
}

/// The logs of one group in one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupCount {
    /// The group's values in grouping order; empty for the rest.
    pub group: Vec<Value>,
    pub rest: bool,
    pub bucket_start: Option<DateTime<Utc>>,
    pub count: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CountError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A fixed width that cuts the range into too many buckets.
    #[error("{buckets} buckets of {width} between {start} and {end}; at most {MAX_BUCKETS}")]
    TooManyBuckets { buckets: i64, width: TimeDelta, start: DateTime<Utc>, end: DateTime<Utc> },
}

/// Counts what `request` asks for.
pub async fn count(store: &dyn LogStore, request: &CountRequest) -> Result<Counts, CountError> {
    let bucket_width = match request.buckets {
        None => None,
        Some(buckets) => match time_range(store, request).await? {
            Some((start, end)) => Some(width(buckets, start, end)?),
            None => return Ok(Counts { total: 0, counts: Vec::new(), bucket_width: None }),
        },
    };
    let micros = bucket_width.map(|width| width.num_microseconds().unwrap_or(i64::MAX));
    let rows = store.count(&request.filter, &request.group_by, micros).await?;
    Ok(fold(rows, &request.group_by, request.top, bucket_width))
}

/// The range to cut into buckets: the filter's bounds, or the matched
/// logs' first and last times where the filter leaves one open.
async fn time_range(
    store: &dyn LogStore,
    request: &CountRequest,
) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>, StoreError> {
    let filter = &request.filter;
    if let (Some(start), Some(end)) = (filter.start_time, filter.end_time) {
        return Ok(Some((start, end)));
    }
    let Some((first, last)) = store.time_range(filter).await? else { return Ok(None) };
    let end = filter.end_time.unwrap_or(last + TimeDelta::microseconds(1));
    Ok(Some((filter.start_time.unwrap_or(first), end)))
}

/// How many epoch-aligned buckets of `width` cover `[start, end)`.
fn buckets_between(width: TimeDelta, start: DateTime<Utc>, end: DateTime<Utc>) -> i64 {
    let width = width.num_microseconds().unwrap_or(i64::MAX).max(1);
    let first = start.timestamp_micros().div_euclid(width);
    let last = (end.timestamp_micros() - 1).div_euclid(width);
    last - first + 1
}

fn width(buckets: Buckets, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<TimeDelta, CountError> {
    match buckets {
        Buckets::Width(width) => {
            let buckets = buckets_between(width, start, end);
            if buckets > MAX_BUCKETS {
                return Err(CountError::TooManyBuckets { buckets, width, start, end });
            }
            Ok(width)
        }
        Buckets::Target(target) => {
            let fits = |width: TimeDelta| buckets_between(width, start, end) <= target;
            let mut ladder = WIDTHS_SECONDS.iter().map(|seconds| TimeDelta::seconds(*seconds));
            Ok(ladder.find(|width| fits(*width)).unwrap_or_else(|| {
                // Beyond weeks: whole weeks, as many as it takes.
                let weeks = (end - start).num_weeks() / target + 1;
                TimeDelta::weeks(weeks.max(1))
            }))
        }
    }
}

/// Keeps the `top` largest groups (by their count over every bucket) in
/// order, each with its buckets in time order, then sums the others per
/// bucket into the rest.
fn fold(rows: Vec<CountRow>, group_by: &[Grouping], top: usize, bucket_width: Option<TimeDelta>) -> Counts {
    let total = rows.iter().map(|row| row.count).sum();
    let mut totals: HashMap<&[Option<String>], i64> = HashMap::new();
    for row in &rows {
        *totals.entry(row.group.as_slice()).or_default() += row.count;
    }
    let mut ranked: Vec<(&[Option<String>], i64)> = totals.into_iter().collect();
    // Largest first; ties in the order of their values, logs without one last.
    let tie_order =
        |group: &[Option<String>]| group.iter().map(|value| (value.is_none(), value.clone())).collect::<Vec<_>>();
    ranked.sort_by(|(group, count), (other, other_count)| {
        other_count.cmp(count).then_with(|| tie_order(group).cmp(&tie_order(other)))
    });
    let rank: HashMap<&[Option<String>], usize> =
        ranked.iter().take(top).enumerate().map(|(rank, (group, _))| (*group, rank)).collect();
    let bucket_start = |bucket: Option<i64>| {
        let width = bucket_width?.num_microseconds()?;
        DateTime::from_timestamp_micros(bucket?.checked_mul(width)?)
    };
    let mut kept: Vec<(usize, Option<i64>, &CountRow)> = Vec::new();
    let mut rest: BTreeMap<Option<i64>, i64> = BTreeMap::new();
    for row in &rows {
        match rank.get(row.group.as_slice()) {
            Some(rank) => kept.push((*rank, row.bucket, row)),
            None => *rest.entry(row.bucket).or_default() += row.count,
        }
    }
    kept.sort_by_key(|(rank, bucket, _)| (*rank, *bucket));
    let mut counts: Vec<GroupCount> = kept
        .into_iter()
        .map(|(_, bucket, row)| GroupCount {
            group: row.group.iter().zip(group_by).map(|(value, grouping)| group_value(value, grouping)).collect(),
            rest: false,
            bucket_start: bucket_start(bucket),
            count: row.count,
        })
        .collect();
    counts.extend(rest.into_iter().map(|(bucket, count)| GroupCount {
        group: Vec::new(),
        rest: true,
        bucket_start: bucket_start(bucket),
        count,
    }));
    Counts { total, counts, bucket_width }
}

/// A group's value as the client sees it: text for columns, the JSON value
/// for metadata keys, null where the log has none.
fn group_value(value: &Option<String>, grouping: &Grouping) -> Value {
    match (value, grouping) {
        (None, _) => Value::Null,
        (Some(json), Grouping::Metadata(_)) => {
            serde_json::from_str(json).unwrap_or_else(|_| Value::String(json.clone()))
        }
        (Some(text), _) => Value::String(text.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("time")
    }

    #[test]
    fn target_buckets_take_the_smallest_fitting_width() {
        let day = (at(0), at(86_400));
        assert_eq!(width(Buckets::Target(24), day.0, day.1).expect("width"), TimeDelta::hours(1));
        assert_eq!(width(Buckets::Target(100), day.0, day.1).expect("width"), TimeDelta::minutes(15));
        assert_eq!(width(Buckets::Target(1), day.0, day.1).expect("width"), TimeDelta::days(1));
        let decade = width(Buckets::Target(10), at(0), at(10 * 365 * 86_400)).expect("width");
        assert!(buckets_between(decade, at(0), at(10 * 365 * 86_400)) <= 10);
    }

    #[test]
    fn fixed_widths_are_bounded_and_aligned_to_the_epoch() {
        assert_eq!(buckets_between(TimeDelta::hours(1), at(1_800), at(5_400)), 2, "half past to half past");
        assert_eq!(buckets_between(TimeDelta::hours(1), at(-3_600), at(0)), 1, "before 1970 too");
        let refused = width(Buckets::Width(TimeDelta::seconds(1)), at(0), at(3_600));
        assert!(matches!(refused, Err(CountError::TooManyBuckets { buckets: 3_600, .. })));
    }

    #[test]
    fn the_largest_groups_come_first_and_the_rest_is_summed_per_bucket() {
        let row =
            |level: &str, bucket, count| CountRow { group: vec![Some(level.into())], bucket: Some(bucket), count };
        let rows =
            vec![row("info", 0, 5), row("info", 1, 7), row("error", 1, 3), row("warn", 0, 2), row("debug", 1, 1)];
        let counts = fold(rows, &[Grouping::Level], 2, Some(TimeDelta::hours(1)));
        assert_eq!(counts.total, 18);
        let count = |group: &[&str], rest, seconds, count| GroupCount {
            group: group.iter().map(|value| Value::from(*value)).collect(),
            rest,
            bucket_start: Some(at(seconds)),
            count,
        };
        assert_eq!(
            counts.counts,
            [
                count(&["info"], false, 0, 5),
                count(&["info"], false, 3_600, 7),
                count(&["error"], false, 3_600, 3),
                count(&[], true, 0, 2),
                count(&[], true, 3_600, 1),
            ]
        );
    }

    #[test]
    fn metadata_groups_keep_their_json_type() {
        let key = Grouping::Metadata("cycle".into());
        assert_eq!(group_value(&Some("42".into()), &key), Value::from(42));
        assert_eq!(group_value(&Some("\"42\"".into()), &key), Value::from("42"));
        assert_eq!(group_value(&None, &key), Value::Null);
        assert_eq!(group_value(&Some("error".into()), &Grouping::Level), Value::from("error"));
    }
}
