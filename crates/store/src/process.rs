//! Processes of the queue: the identity of a training process (pid plus its start time, so that a pid the kernel
//! reused for another program is not mistaken for it), liveness, the stop signal, detached spawning and the
//! runner's single-instance lock (`runner.lock`, flock).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use ferrotune_home::Home;

use crate::error::{io, Error, Result};

/// A process as it was when recorded: its pid and start time (clock ticks after boot, field 22 of
/// `/proc/<pid>/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId {
    pub pid: u32,
    pub start: Option<u64>,
}

impl ProcessId {
    /// The process `pid` with its current start time.
    pub fn of(pid: u32) -> ProcessId {
        ProcessId {
            pid,
            start: stat(pid).map(|s| s.start),
        }
    }

    /// Whether this very process still runs: the pid exists, is not a zombie and started at the recorded time
    /// (without a recorded time, the pid existing is enough).
    pub fn is_alive(&self) -> bool {
        match stat(self.pid) {
            Some(s) if s.state != 'Z' && s.state != 'X' => self.start.is_none_or(|t| t == s.start),
            _ => false,
        }
    }
}

struct Stat {
    state: char,
    start: u64,
}

/// State and start time from `/proc/<pid>/stat` (the command name in parentheses may hold spaces, so fields are
/// counted after the last `)`).
fn stat(pid: u32) -> Option<Stat> {
    if pid == 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, starttime field 22.
    Some(Stat {
        state: fields.first()?.chars().next()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Sends SIGTERM to `process` if it is still the recorded process; whether a signal was sent.
pub fn terminate(process: ProcessId) -> std::io::Result<bool> {
    if !process.is_alive() {
        return Ok(false);
    }
    // SAFETY: kill has no memory-safety preconditions; the pid was checked against its start time just above.
    let rc = unsafe { libc::kill(process.pid as libc::pid_t, libc::SIGTERM) };
    if rc == 0 {
        Ok(true)
    } else {
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ESRCH) => Ok(false),
            _ => Err(e),
        }
    }
}

/// Appends to (creating) `path`, for a child's stderr.
fn append(path: &Path) -> Result<File> {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(path))
}

/// Spawns `program args` with stdin and stdout closed, stderr appended to `stderr`, in `dir`, with
/// `FERROTUNE_HOME` set to `home`. `detach` puts it in a session of its own (setsid), so it outlives the
/// terminal and the command that started it.
pub(crate) fn spawn(
    program: &Path,
    args: &[&std::ffi::OsStr],
    home: &Home,
    stderr: &Path,
    detach: bool,
) -> Result<Child> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("FERROTUNE_HOME", home.root())
        .current_dir(home.root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(append(stderr)?);
    if detach {
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.spawn().map_err(|source| Error::Spawn {
        program: program.to_path_buf(),
        source,
    })
}

/// The runner's lock file: `runner.lock` in the home, holding the runner's pid and start time.
pub fn runner_lock_path(home: &Home) -> PathBuf {
    home.root().join("runner.lock")
}

/// The single-instance lock of the runner; released when dropped.
pub struct RunnerLock {
    file: File,
}

impl RunnerLock {
    /// Takes the lock if no runner holds it, retrying for up to `patience` (a starting command may hold it for a
    /// moment while it checks for a runner); `None` when a runner holds it. Writes this process's identity in it.
    pub fn acquire(home: &Home, patience: std::time::Duration) -> Result<Option<RunnerLock>> {
        let path = runner_lock_path(home);
        let deadline = std::time::Instant::now() + patience;
        loop {
            let Some(mut file) = try_lock(&path)? else {
                if std::time::Instant::now() >= deadline {
                    return Ok(None);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            };
            let me = ProcessId::of(std::process::id());
            let text = format!("{} {}\n", me.pid, me.start.unwrap_or(0));
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(text.as_bytes()))
                .map_err(io(&path))?;
            return Ok(Some(RunnerLock { file }));
        }
    }

    /// Releases the lock (the same as dropping it); the file stays.
    pub fn release(self) {
        let _ = self.file.set_len(0);
        drop(self);
    }
}

/// Opens and try-locks `path` exclusively; `None` when another process holds it.
fn try_lock(path: &Path) -> Result<Option<File>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(path))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(io(path)(e)),
    }
}

/// Whether a runner holds the lock of `home` (a momentary try-lock; the caller spawns a runner when not).
pub fn runner_is_alive(home: &Home) -> Result<bool> {
    Ok(try_lock(&runner_lock_path(home))?.is_none())
}

/// The runner's identity as written in its lock file, if one is running.
pub fn runner_process(home: &Home) -> Option<ProcessId> {
    let mut text = String::new();
    File::open(runner_lock_path(home))
        .ok()?
        .read_to_string(&mut text)
        .ok()?;
    let mut parts = text.split_whitespace();
    let pid = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok().filter(|&s| s != 0);
    let process = ProcessId { pid, start };
    process.is_alive().then_some(process)
}

/// Makes sure a runner serves `home`: when none holds the lock, spawns `exe experiment runner` detached (its
/// stderr goes to `runner.log`). Returns whether one was spawned.
pub fn ensure_runner(home: &Home, exe: &Path) -> Result<bool> {
    if runner_is_alive(home)? {
        return Ok(false);
    }
    let log = home.root().join("runner.log");
    let mut child = spawn(
        exe,
        &["experiment".as_ref(), "runner".as_ref()],
        home,
        &log,
        true,
    )?;
    // A long-lived caller (the server) reaps the runner when it ends; a command that exits first leaves that to
    // init.
    std::thread::spawn(move || child.wait());
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let line = "123 (a (weird) name) S 1 123 123 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 1 0 98765 1000 50";
        let s = parse_stat(line).unwrap();
        assert_eq!((s.state, s.start), ('S', 98765));
    }

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessId::of(std::process::id());
        assert!(me.start.is_some() && me.is_alive());
        let reused = ProcessId {
            start: me.start.map(|s| s + 1),
            ..me
        };
        assert!(
            !reused.is_alive(),
            "a pid with another start time is another process"
        );
        assert!(!ProcessId {
            pid: 0,
            start: None
        }
        .is_alive());
    }

    #[test]
    fn the_runner_lock_is_single_instance() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let patience = std::time::Duration::from_millis(100);
        let lock = RunnerLock::acquire(&home, patience).unwrap().unwrap();
        assert!(runner_is_alive(&home).unwrap());
        assert_eq!(
            runner_process(&home).map(|p| p.pid),
            Some(std::process::id())
        );
        assert!(RunnerLock::acquire(&home, patience).unwrap().is_none());
        lock.release();
        assert!(!runner_is_alive(&home).unwrap());
        assert!(RunnerLock::acquire(&home, patience).unwrap().is_some());
    }
}
