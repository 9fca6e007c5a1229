//! Times between the command line and the wire.

use chrono::{DateTime, Utc};

pub fn to_proto(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: time.timestamp(), nanos: time.timestamp_subsec_nanos() as i32 }
}

pub fn from_proto(time: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    time.and_then(|time| DateTime::from_timestamp(time.seconds, u32::try_from(time.nanos).unwrap_or(0)))
}
