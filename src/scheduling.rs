//! How the kernel schedules the server's threads: a commit wakes thousands
//! of followers at once, and the writer's acknowledgement must not wait
//! behind them.
//!
//! - The write path's threads (the committer, and the SQLite connections,
//!   each a thread, opened at start) ask for short time slices (EEVDF's
//!   custom slice, Linux 6.12 and later): a woken thread with a shorter
//!   slice than the running one preempts it at once. With the default
//!   slice it could wait for the scheduler's next tick: in the fan-out
//!   benchmark, a SQLite commit's round trips between the committer and
//!   its connection's thread stalled in multiples of 4 ms (HZ=250) while
//!   followers and clients kept both cores busy.
//! - The server runtime's threads keep the default slice: they also write
//!   every follower's bytes to its connection, and short slices there cost
//!   the deliveries a tenth more CPU.
//! - The follows runtime's threads yield: a lower priority (nice 10), so
//!   the kernel gives the server's threads the CPU first.
//!
//! A thread inherits all this from the thread that creates it. A kernel
//! without custom slices ignores or refuses the request, and only the
//! priorities remain; elsewhere than Linux nothing changes.

/// The slice the write path's threads ask for: the shortest the kernel
/// grants. A commit's steps take tens of microseconds each.
#[cfg(target_os = "linux")]
const SERVER_SLICE_NANOS: u64 = 100_000;

/// How much less the kernel favours the follows runtime's threads than the
/// server's (a nice value, 0 to 19): in the fan-out benchmark, 10 took the
/// writer's ack p50 from 3 to 2 ms and its p99 from 21 to 15–18 ms.
#[cfg(target_os = "linux")]
const FOLLOWS_NICENESS: i32 = 10;

/// Asks short slices for the calling thread, and so for the threads it
/// creates. A kernel without custom slices ignores the request or, with
/// an error, refuses it: the thread keeps the default.
pub fn favour_latency() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    linux::change(|attributes| attributes.runtime = SERVER_SLICE_NANOS)?;
    Ok(())
}

/// Gives the calling thread the default slice back: for the server
/// runtime's threads, which main's favoured thread creates.
pub fn share_fairly() {
    #[cfg(target_os = "linux")]
    if let Err(error) = linux::change(|attributes| attributes.runtime = 0) {
        tracing::debug!(%error, "cannot give a runtime thread the default time slice");
    }
}

/// Lowers the calling thread's priority, with the default slice: a
/// follower's delivery can wait; a writer's acknowledgement should not.
pub fn yield_to_server() {
    #[cfg(target_os = "linux")]
    if let Err(error) = linux::change(|attributes| (attributes.nice, attributes.runtime) = (FOLLOWS_NICENESS, 0)) {
        tracing::debug!(%error, "cannot lower a follows thread's priority");
    }
}

#[cfg(target_os = "linux")]
mod linux {
    /// The kernel's `struct sched_attr`, as of its first version.
    #[repr(C)]
    #[derive(Debug, Default)]
    pub(super) struct SchedAttributes {
        size: u32,
        pub(super) policy: u32,
        flags: u64,
        pub(super) nice: i32,
        priority: u32,
        /// For the time-sharing policy, the slice in nanoseconds (0: the
        /// default; read back, the slice in force).
        pub(super) runtime: u64,
        deadline: u64,
        period: u64,
    }

    /// Reads the calling thread's scheduling, changes it with `edit`, and
    /// applies it: for the time-sharing policy only (an operator's choice
    /// of another one stays).
    pub(super) fn change(edit: impl FnOnce(&mut SchedAttributes)) -> std::io::Result<()> {
        let mut attributes = current()?;
        if attributes.policy != libc::SCHED_OTHER as u32 {
            return Ok(());
        }
        edit(&mut attributes);
        // SAFETY: the kernel reads `attributes.size` bytes, the struct's size.
        if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &raw const attributes, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The calling thread's scheduling.
    pub(super) fn current() -> std::io::Result<SchedAttributes> {
        let mut attributes = SchedAttributes::default();
        let size = std::mem::size_of::<SchedAttributes>() as u32;
        // SAFETY: the kernel writes at most `size` bytes, the struct's size.
        if unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &raw mut attributes, size, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        attributes.size = size;
        Ok(attributes)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// On its own thread: the test's scheduling must not leak into others.
    #[test]
    fn threads_inherit_short_slices_and_the_follows_yield() {
        std::thread::spawn(|| {
            let default_slice = linux::current().expect("scheduling").runtime;
            let favoured = favour_latency();
            if default_slice == 0 {
                // A kernel without custom slices (before 6.12) reports none,
                // and grants none.
                assert_eq!(linux::current().expect("scheduling").runtime, 0, "{favoured:?}");
            } else {
                favoured.expect("a kernel that reports slices grants a custom one");
                assert_eq!(linux::current().expect("scheduling").runtime, SERVER_SLICE_NANOS);
                let inherited = std::thread::spawn(|| linux::current().expect("scheduling").runtime);
                assert_eq!(inherited.join().expect("thread"), SERVER_SLICE_NANOS, "a new thread inherits it");
                share_fairly();
                assert_eq!(linux::current().expect("scheduling").runtime, default_slice);
            }
            yield_to_server();
            let yielded = linux::current().expect("scheduling");
            assert_eq!((yielded.nice, yielded.runtime), (FOLLOWS_NICENESS, default_slice));
        })
        .join()
        .expect("the test's thread");
    }
}
