//! Following a file that another process appends to (a run's `metrics.jsonl` and `logs.log`): only complete
//! lines are returned, each once; a file that shrank (a restarted run cleared it) is read again from its start.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Reads the complete lines appended to a file since the last call.
#[derive(Debug, Clone)]
pub struct LineFollower {
    path: PathBuf,
    offset: u64,
}

/// What one [`LineFollower::read`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewLines {
    /// The complete lines added since the last read (without their newlines).
    pub lines: Vec<String>,
    /// The file was shorter than what had been read: it was rewritten, and `lines` start from its beginning.
    pub restarted: bool,
}

impl LineFollower {
    /// A follower at the start of `path` (which may not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> LineFollower {
        LineFollower {
            path: path.into(),
            offset: 0,
        }
    }

    /// The followed file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// New complete lines; a half-written last line waits for the next call. A missing file has none.
    pub fn read(&mut self) -> std::io::Result<NewLines> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(NewLines::default()),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let restarted = len < self.offset;
        if restarted {
            self.offset = 0;
        }
        if len == self.offset {
            return Ok(NewLines {
                lines: Vec::new(),
                restarted,
            });
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        file.take(len - self.offset).read_to_end(&mut buf)?;
        let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.offset += complete as u64;
        let lines = String::from_utf8_lossy(&buf[..complete])
            .lines()
            .map(String::from)
            .collect();
        Ok(NewLines { lines, restarted })
    }

    /// [`LineFollower::read`]'s lines, none when the file cannot be read.
    pub fn read_lines(&mut self) -> Vec<String> {
        self.read().map(|n| n.lines).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_lines_once_and_a_truncated_file_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let mut f = LineFollower::new(&path);
        assert!(f.read_lines().is_empty());
        std::fs::write(&path, "a\nb\nhal").unwrap();
        assert_eq!(f.read_lines(), ["a", "b"]);
        assert!(f.read_lines().is_empty());
        std::fs::write(&path, "a\nb\nhalf\n").unwrap();
        assert_eq!(f.read_lines(), ["half"]);
        std::fs::write(&path, "new\n").unwrap();
        let again = f.read().unwrap();
        assert!(again.restarted);
        assert_eq!(again.lines, ["new"]);
    }
}
