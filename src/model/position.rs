/// A log's place in the commit order of all logs: a log committed later has
/// a greater position, whatever its run, replica or clock, and a run's logs
/// are in seq order. The cursor of a follow across runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The log's commit: PostgreSQL's transaction id; SQLite's log counter.
    pub commit: i64,
    /// The log's place among its commit's logs (PostgreSQL; 0 on SQLite,
    /// whose counter numbers each log).
    pub index: i32,
}

impl Position {
    /// Before every log.
    pub const START: Position = Position::before(0);

    /// Before every log of `commit` and after every log of earlier ones.
    pub const fn before(commit: i64) -> Position {
        Position { commit, index: -1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_by_commit_then_index() {
        assert!(Position { commit: 7, index: 9 } < Position { commit: 8, index: 0 });
        assert!(Position { commit: 8, index: 0 } < Position { commit: 8, index: 1 });
        assert!(Position::before(8) < Position { commit: 8, index: 0 });
        assert!(Position { commit: 7, index: 9 } < Position::before(8));
        assert!(Position::START < Position::before(1));
    }
}
