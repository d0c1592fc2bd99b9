//! JSON lines from any reader, with a cap on line length: a line longer
//! than the cap is skipped to its newline without being buffered, so one
//! endless line cannot exhaust memory. Blank lines are skipped; `\r\n`
//! endings are accepted.

use std::io::{self, BufRead, BufReader, Read};

/// What [`LineReader::next_into`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A line, now in the caller's buffer.
    Line(u64),
    /// A line over the cap, skipped.
    Oversized { number: u64, len: usize },
}

pub struct LineReader<R> {
    reader: BufReader<R>,
    max_len: usize,
    number: u64,
}

impl<R: Read> LineReader<R> {
    pub fn new(reader: BufReader<R>, max_len: usize) -> LineReader<R> {
        LineReader { reader, max_len, number: 0 }
    }

    /// Whether the next line can be read without waiting on the input:
    /// a live source flushes what it has before it would block.
    pub fn has_buffered(&self) -> bool {
        !self.reader.buffer().is_empty()
    }

    /// Reads the next line into `buf` (cleared first); `None` at the end.
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Next>> {
        loop {
            buf.clear();
            let mut oversized = 0usize;
            let mut saw_any = false;
            loop {
                let available = self.reader.fill_buf()?;
                if available.is_empty() {
                    break;
                }
                saw_any = true;
                let (chunk, done) = match memchr(available) {
                    Some(i) => (&available[..i], i + 1),
                    None => (available, available.len()),
                };
                let found_newline = done > chunk.len();
                if oversized > 0 || buf.len() + chunk.len() > self.max_len {
                    oversized += buf.len() + chunk.len();
                    buf.clear();
                } else {
                    buf.extend_from_slice(chunk);
                }
                self.reader.consume(done);
                if found_newline {
                    break;
                }
            }
            if !saw_any {
                return Ok(None);
            }
            self.number += 1;
            if oversized > 0 {
                return Ok(Some(Next::Oversized { number: self.number, len: oversized }));
            }
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(Next::Line(self.number)));
        }
    }
}

fn memchr(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(input: &[u8], max: usize) -> Vec<(Next, Vec<u8>)> {
        let mut reader = LineReader::new(io::BufReader::with_capacity(4, input), max);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(r) = reader.next_into(&mut buf).unwrap() {
            out.push((r, buf.clone()));
        }
        out
    }

    #[test]
    fn numbers_lines_skips_blanks_and_caps_length() {
        let out = records(b"{\"a\":1}\r\n\n  \n0123456789abcdef\n{}", 10);
        assert_eq!(
            out,
            vec![
                (Next::Line(1), b"{\"a\":1}".to_vec()),
                (Next::Oversized { number: 4, len: 16 }, Vec::new()),
                (Next::Line(5), b"{}".to_vec()),
            ]
        );
    }
}
