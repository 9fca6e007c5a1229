//! Bytes read from a program or a pipe, cut into the messages of logs: one
//! per line, without its line ending; bytes that are not UTF-8 and NUL
//! characters (which no message may hold) become U+FFFD; a line longer than
//! a message may be is cut into several. Empty lines carry nothing a log
//! can hold (a message is never empty) and make none.

/// The longest message made, in bytes: the server's default bound.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

#[derive(Default)]
pub struct LineSplitter {
    /// The start of a line whose end has not been read yet.
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Hands each line completed by `chunk` to `emit`.
    pub fn push(&mut self, chunk: &[u8], mut emit: impl FnMut(String)) {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|byte| *byte == b'\n') {
            if self.partial.is_empty() {
                messages(&rest[..end], &mut emit);
            } else {
                self.partial.extend_from_slice(&rest[..end]);
                messages(&std::mem::take(&mut self.partial), &mut emit);
            }
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
        // A line that never ends still becomes logs, a message's worth at a
        // time, cut where no character continues.
        if self.partial.len() >= MAX_MESSAGE_BYTES {
            let mut cut = MAX_MESSAGE_BYTES;
            while cut > 0 && self.partial.get(cut).is_some_and(|byte| byte & 0b1100_0000 == 0b1000_0000) {
                cut -= 1;
            }
            let rest = self.partial.split_off(cut);
            messages(&std::mem::replace(&mut self.partial, rest), &mut emit);
        }
    }

    /// Hands on a last line that had no line ending.
    pub fn finish(&mut self, emit: impl FnMut(String)) {
        messages(&std::mem::take(&mut self.partial), emit);
    }
}

/// One line (without its `\n`) as messages.
fn messages(line: &[u8], mut emit: impl FnMut(String)) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(line);
    let mut text = if text.contains('\0') { text.replace('\0', "\u{FFFD}") } else { text.into_owned() };
    while text.len() > MAX_MESSAGE_BYTES {
        let mut cut = MAX_MESSAGE_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let rest = text.split_off(cut);
        emit(std::mem::replace(&mut text, rest));
    }
    emit(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut splitter = LineSplitter::default();
        let mut lines = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, |line| lines.push(line));
        }
        splitter.finish(|line| lines.push(line));
        lines
    }

    #[test]
    fn lines_across_chunks_become_one_message_each() {
        assert_eq!(split(&[b"one\ntw", b"o\r\n\nthr", b"ee"]), ["one", "two", "three"]);
        assert_eq!(split(&[b"bad \xff byte\0\n"]), ["bad \u{FFFD} byte\u{FFFD}"]);
        assert_eq!(split(&[b"\n\n"]), Vec::<String>::new());
    }

    #[test]
    fn a_line_longer_than_a_message_is_cut_on_character_boundaries() {
        let long = "é".repeat(MAX_MESSAGE_BYTES / 2 + 10);
        let lines = split(&[long.as_bytes(), b"\n"]);
        assert!(lines.len() == 2 && lines.iter().all(|line| line.len() <= MAX_MESSAGE_BYTES));
        assert_eq!(lines.concat(), long);
        let endless: Vec<&[u8]> = vec!["é".repeat(MAX_MESSAGE_BYTES / 4).as_bytes().to_vec().leak(); 3];
        let lines = split(&endless);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines.concat(), "é".repeat(MAX_MESSAGE_BYTES / 4 * 3), "no character is broken");
    }
}
