//! Live delivery: the hub that wakes followers when their sequence changes,
//! and the follow loop every reader shares (gRPC streams, and any other
//! entry point), which yields domain events, never wire messages.

mod across;
mod commit_marks;
mod commit_tail;
mod events;
mod follower;
mod hub;
mod shared_log;

pub use across::{AcrossEvent, AcrossFollow, AcrossStart};
pub use commit_marks::mark_commit_order;
pub use events::EventStream;
pub use follower::{FollowError, FollowEvent, Followers, FollowersConfig};
pub use hub::{Hub, Subscription, Tail};
pub use shared_log::SharedLog;
