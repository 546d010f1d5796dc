//! An in-process HTTP file server for the recording double: each connection reads one request
//! and answers `200` with the file at its path (query included, as sent) or `404`. Gives the
//! request lines seen, so tests can check what was asked for.
#![allow(dead_code)]

use ramboot::sys::{Connection, RecordingSys};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The request lines (`GET /path HTTP/1.1 host:port`) seen.
pub type Seen = Arc<Mutex<Vec<String>>>;

pub fn serve_files(sys: &RecordingSys, files: HashMap<String, Vec<u8>>) -> Seen {
    let seen: Seen = Arc::default();
    let files = Arc::new(files);
    let s = seen.clone();
    sys.serve_tcp(move |host, port| {
        Ok(Box::new(FileConn {
            files: files.clone(),
            seen: s.clone(),
            peer: format!("{host}:{port}"),
            request: Vec::new(),
            answer: None,
        }))
    });
    seen
}

struct FileConn {
    files: Arc<HashMap<String, Vec<u8>>>,
    seen: Seen,
    peer: String,
    request: Vec<u8>,
    answer: Option<io::Cursor<Vec<u8>>>,
}

impl io::Write for FileConn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.request.extend(buf);
        if self.answer.is_none() && self.request.windows(4).any(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&self.request).into_owned();
            let line = text.lines().next().unwrap_or_default().to_string();
            self.seen
                .lock()
                .unwrap()
                .push(format!("{line} {}", self.peer));
            let path = line.split(' ').nth(1).unwrap_or("/");
            let bytes = match self.files.get(path) {
                Some(body) => {
                    let mut b =
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                            .into_bytes();
                    b.extend(body);
                    b
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            };
            self.answer = Some(io::Cursor::new(bytes));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Read for FileConn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.answer {
            Some(c) => c.read(buf),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Connection for FileConn {
    fn set_timeout(&mut self, _: Duration) -> io::Result<()> {
        Ok(())
    }
}
