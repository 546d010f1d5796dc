//! A service's captured stdout and stderr: `<dir>/current`, rotated at a size bound to
//! `current.1` (the previous `current.1` becomes `current.2`, and so on, the oldest beyond
//! `keep` deleted), so a chatty service can never fill the RAM-backed `/var/log`. Rotation
//! happens at a line end when the line fits, so a line is only split when it alone is longer
//! than the bound. The last lines are also kept in memory for the kernel log when the
//! service dies.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;

/// How many complete lines are kept for the kernel log.
pub const TAIL_LINES: usize = 10;
/// A line longer than this is cut in the tail (not in the file).
const TAIL_LINE_MAX: usize = 200;

pub struct RotatingLog {
    /// Host path of the directory (`None`: output only kept in the tail).
    dir: Option<PathBuf>,
    file: Option<File>,
    size: u64,
    limit: u64,
    keep: u32,
    tail: VecDeque<String>,
    partial: Vec<u8>,
}

impl RotatingLog {
    /// Opens (creating) `dir/current` for appending. On failure the log keeps only the tail
    /// and the error is returned for the caller to report.
    pub fn open(dir: PathBuf, limit: u64, keep: u32) -> (RotatingLog, Option<io::Error>) {
        let mut log = RotatingLog {
            dir: Some(dir),
            file: None,
            size: 0,
            limit: limit.max(1),
            keep,
            tail: VecDeque::new(),
            partial: Vec::new(),
        };
        let err = log.reopen().err();
        if err.is_some() {
            log.dir = None;
        }
        (log, err)
    }

    fn reopen(&mut self) -> io::Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        std::fs::create_dir_all(dir)?;
        let file = File::options()
            .create(true)
            .append(true)
            .open(dir.join("current"))?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    /// Appends output; rotates whenever `current` reaches the bound.
    pub fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        self.keep_tail(bytes);
        if self.dir.is_none() {
            return Ok(());
        }
        while !bytes.is_empty() {
            if self.size >= self.limit {
                self.rotate()?;
            }
            let room = (self.limit - self.size) as usize;
            let take = if bytes.len() <= room {
                bytes.len()
            } else {
                // Up to the last line end that fits; a line longer than the whole bound
                // is split.
                match bytes[..room].iter().rposition(|&b| b == b'\n') {
                    Some(i) => i + 1,
                    None if self.size == 0 => room,
                    None => 0,
                }
            };
            if take == 0 {
                self.rotate()?;
                continue;
            }
            if let Some(f) = &mut self.file {
                f.write_all(&bytes[..take])?;
            }
            self.size += take as u64;
            bytes = &bytes[take..];
            if self.size < self.limit && !bytes.is_empty() {
                self.rotate()?;
            }
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        self.file = None;
        let numbered = |n: u32| dir.join(format!("current.{n}"));
        let _ = std::fs::remove_file(numbered(self.keep));
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        if self.keep > 0 {
            std::fs::rename(dir.join("current"), numbered(1))?;
        } else {
            std::fs::remove_file(dir.join("current"))?;
        }
        self.reopen()
    }

    fn keep_tail(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            self.push_line(&line[..line.len() - 1]);
        }
        if self.partial.len() > TAIL_LINE_MAX {
            let line = std::mem::take(&mut self.partial);
            self.push_line(&line);
        }
    }

    fn push_line(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(&line[..line.len().min(TAIL_LINE_MAX)]);
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(text.trim_end().to_string());
    }

    /// The last lines (an unfinished last line included), oldest first; clears them so the
    /// next death reports only what came after.
    pub fn take_tail(&mut self) -> Vec<String> {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.push_line(&line);
        }
        self.tail.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_line_ends_keeping_a_few_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("svc");
        let (mut log, err) = RotatingLog::open(d.clone(), 10, 2);
        assert!(err.is_none());
        for line in [
            "aaaa\n", "bbbb\n", "cccc\n", "ddd", "d\n", "eeee\n", "ffff\n",
        ] {
            log.write(line.as_bytes()).unwrap();
        }
        let read = |n: &str| std::fs::read_to_string(d.join(n)).unwrap_or_default();
        assert_eq!(read("current"), "eeee\nffff\n");
        assert_eq!(read("current.1"), "cccc\ndddd\n");
        assert_eq!(read("current.2"), "aaaa\nbbbb\n");
        assert!(!d.join("current.3").exists(), "only two kept");
        // One write with several lines is split at a line end; a line longer than the bound
        // alone is cut.
        log.write(b"gg\nhhhhhhhhhhhhhhh\n").unwrap();
        assert_eq!(read("current.2"), "gg\n");
        assert_eq!(read("current.1"), "hhhhhhhhhh");
        assert_eq!(read("current"), "hhhhh\n");
        let tail = log.take_tail();
        assert_eq!(tail.len(), 8);
        assert_eq!(tail.last().unwrap(), "hhhhhhhhhhhhhhh");
        assert!(log.take_tail().is_empty());
        log.write(b"no newline").unwrap();
        assert_eq!(log.take_tail(), ["no newline"]);
    }

    #[test]
    fn an_unwritable_directory_keeps_the_tail_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        let (mut log, err) = RotatingLog::open(dir.path().join("file/svc"), 10, 2);
        assert!(err.is_some());
        log.write(b"still kept\n").unwrap();
        assert_eq!(log.take_tail(), ["still kept"]);
    }
}
