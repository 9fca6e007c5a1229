//! Logs read but not yet stored, in order: in memory up to a bound, then in
//! a file on disk, so that a long outage of the server costs disk, not
//! memory, and loses nothing. Once anything waits on disk, every newer log
//! goes there too, and logs come back from disk oldest first: the order in
//! which they were read is the order in which they are sent.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

use prost::Message;

use crate::proto::v1 as pb;

pub struct Backlog {
    memory: VecDeque<pb::LogEntry>,
    memory_bytes: usize,
    memory_limit: usize,
    spill: Option<Spill>,
}

/// The part of the backlog on disk: written at its end, read from its start.
struct Spill {
    /// Deleted when the spill is dropped.
    file: tempfile::NamedTempFile,
    writer: BufWriter<File>,
    reader: BufReader<File>,
    /// Logs written and not yet read back.
    waiting: usize,
}

impl Backlog {
    /// A backlog that keeps up to `memory_limit` bytes of encoded logs in
    /// memory.
    pub fn new(memory_limit: usize) -> Backlog {
        Backlog { memory: VecDeque::new(), memory_bytes: 0, memory_limit, spill: None }
    }

    /// Logs waiting, in memory and on disk.
    pub fn len(&self) -> usize {
        self.memory.len() + self.spill.as_ref().map_or(0, |spill| spill.waiting)
    }

    /// The file logs wait in, while some do.
    pub fn spill_path(&self) -> Option<PathBuf> {
        self.spill.as_ref().map(|spill| spill.file.path().to_path_buf())
    }

    /// Adds a log after every other.
    pub fn push(&mut self, entry: pb::LogEntry) -> std::io::Result<()> {
        let size = entry.encoded_len();
        if self.spill.is_none() && self.memory_bytes + size <= self.memory_limit {
            self.memory_bytes += size;
            self.memory.push_back(entry);
            return Ok(());
        }
        let spill = match &mut self.spill {
            Some(spill) => spill,
            None => self.spill.insert(Spill::new()?),
        };
        spill.write(&entry)
    }

    /// The oldest logs, at most `max_logs` of them and `max_bytes` encoded
    /// (at least one, whatever its size); first brings logs back from disk
    /// into the memory they have room in.
    pub fn take(&mut self, max_logs: usize, max_bytes: usize) -> std::io::Result<Vec<pb::LogEntry>> {
        self.refill()?;
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(entry) = self.memory.front() {
            let size = entry.encoded_len();
            if batch.len() == max_logs || (!batch.is_empty() && bytes + size > max_bytes) {
                break;
            }
            bytes += size;
            self.memory_bytes -= size;
            batch.extend(self.memory.pop_front());
        }
        Ok(batch)
    }

    fn refill(&mut self) -> std::io::Result<()> {
        let Some(spill) = &mut self.spill else { return Ok(()) };
        spill.writer.flush()?;
        while spill.waiting > 0 && self.memory_bytes < self.memory_limit {
            let entry = spill.read()?;
            self.memory_bytes += entry.encoded_len();
            self.memory.push_back(entry);
        }
        if spill.waiting == 0 {
            self.spill = None;
        }
        Ok(())
    }
}

impl Spill {
    fn new() -> std::io::Result<Spill> {
        let file = tempfile::Builder::new().prefix("logwell-backlog-").suffix(".bin").tempfile()?;
        let writer = BufWriter::new(file.reopen()?);
        let reader = BufReader::new(file.reopen()?);
        Ok(Spill { file, writer, reader, waiting: 0 })
    }

    /// A log as its length (4 bytes, little-endian) and its protobuf bytes.
    fn write(&mut self, entry: &pb::LogEntry) -> std::io::Result<()> {
        let bytes = entry.encode_to_vec();
        let length = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
        self.writer.write_all(&length.to_le_bytes())?;
        self.writer.write_all(&bytes)?;
        self.waiting += 1;
        Ok(())
    }

    fn read(&mut self) -> std::io::Result<pb::LogEntry> {
        let mut length = [0; 4];
        self.reader.read_exact(&mut length)?;
        let mut bytes = vec![0; u32::from_le_bytes(length) as usize];
        self.reader.read_exact(&mut bytes)?;
        self.waiting -= 1;
        pb::LogEntry::decode(bytes.as_slice()).map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: usize) -> pb::LogEntry {
        pb::LogEntry { message: format!("line {index}"), ..Default::default() }
    }

    fn messages(batch: &[pb::LogEntry]) -> Vec<String> {
        batch.iter().map(|entry| entry.message.clone()).collect()
    }

    #[test]
    fn logs_beyond_the_memory_bound_wait_on_disk_and_come_back_in_order() {
        let size = entry(0).encoded_len();
        let mut backlog = Backlog::new(size * 10);
        for index in 0..10 {
            backlog.push(entry(index)).expect("push");
        }
        assert!(backlog.spill_path().is_none(), "ten fit in memory");
        for index in 10..1_000 {
            backlog.push(entry(index)).expect("push");
        }
        let path = backlog.spill_path().expect("the rest went to disk");
        assert!(path.exists());
        assert_eq!(backlog.len(), 1_000);

        let mut taken = Vec::new();
        // Interleave reads and writes: newer logs must queue behind the disk.
        for round in 0..50 {
            taken.extend(messages(&backlog.take(7, usize::MAX).expect("take")));
            backlog.push(entry(1_000 + round)).expect("push");
        }
        while backlog.len() > 0 {
            taken.extend(messages(&backlog.take(100, usize::MAX).expect("take")));
        }
        let expected: Vec<String> = (0..1_050).map(|index| format!("line {index}")).collect();
        assert_eq!(taken, expected, "every log once, in the order pushed");
        assert!(backlog.spill_path().is_none() && !path.exists(), "the file goes once drained");
    }

    #[test]
    fn a_batch_keeps_to_its_bounds_but_takes_an_oversized_log_alone() {
        let mut backlog = Backlog::new(1 << 20);
        backlog.push(pb::LogEntry { message: "x".repeat(5_000), ..Default::default() }).expect("push");
        for index in 0..10 {
            backlog.push(entry(index)).expect("push");
        }
        assert_eq!(backlog.take(100, 1_000).expect("take").len(), 1, "the big one alone");
        assert_eq!(backlog.take(4, 1_000).expect("take").len(), 4);
        assert_eq!(backlog.take(100, 3 * entry(0).encoded_len()).expect("take").len(), 3);
        assert_eq!(backlog.len(), 3);
    }
}
