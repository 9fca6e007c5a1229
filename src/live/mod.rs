//! Live delivery: the hub that wakes followers when their sequence changes,
//! and the follow loop every reader shares (gRPC streams, and any other
//! entry point), which yields domain events, never wire messages.

mod across;
mod commit_tail;
mod follower;
mod hub;

pub use across::{AcrossEvent, AcrossEvents, AcrossFollow, AcrossStart};
pub use follower::{FollowError, FollowEvent, Followers, FollowersConfig};
pub use hub::{Hub, Subscription, Tail};
