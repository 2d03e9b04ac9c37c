//! `doctor`'s look at run folders. A run whose `status.json` says `running` while the process it names is gone
//! died (killed with SIGKILL, out of memory or file size, the machine stopped); what it was writing
//! ([`RunDir::leftovers`]: a checkpoint being staged, a temporary file) is left behind. Both are reported, and
//! repaired on request: the status becomes `failed` with the reason, the leftovers are removed (the last complete
//! checkpoint stays, so `train --resume` continues from it).

use std::path::{Path, PathBuf};

use ferrotune_home::{RunDir, RunStatus};

use crate::error::{io, Result};
use crate::process::ProcessId;

/// What a run folder's `status.json` says of its process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunLife {
    /// Not running (finished, failed, stopped, queued, or no `status.json`).
    Idle,
    /// Running, and its process `pid` is alive.
    Running { pid: u32 },
    /// `status.json` says running, but the process it names (if any) is gone.
    Died { pid: Option<u32> },
}

/// One run folder as `doctor` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCheck {
    pub folder: PathBuf,
    pub life: RunLife,
    /// Files and folders an interrupted write left (none are reported while the run is alive: it is writing them).
    pub leftovers: Vec<PathBuf>,
}

impl RunCheck {
    /// Whether something needs repairing.
    pub fn needs_repair(&self) -> bool {
        matches!(self.life, RunLife::Died { .. }) || !self.leftovers.is_empty()
    }

    /// Marks a died run `failed` with the reason and removes the leftovers; what was done, one line each.
    pub fn repair(&self) -> Result<Vec<String>> {
        let run = RunDir::new(&self.folder);
        let mut done = Vec::new();
        if let RunLife::Died { pid } = self.life {
            let message = died_message(pid);
            run.write_status(RunStatus::Failed, &message)
                .map_err(io(&run.status()))?;
            done.push(format!(
                "{}: status failed ({message})",
                run.status().display()
            ));
        }
        for path in run.remove_leftovers().map_err(io(run.root()))? {
            done.push(format!("removed {}", path.display()));
        }
        Ok(done)
    }
}

/// Why a died run failed, in words.
pub fn died_message(pid: Option<u32>) -> String {
    let process = pid.map_or("its training process".to_string(), |p| {
        format!("its training process (pid {p})")
    });
    format!("{process} ended without finishing (killed, out of memory, or the machine stopped); the last checkpoint is kept")
}

/// The run folders of `store`: every registered experiment's output folder and every folder under
/// `experiments/`, each once, sorted.
pub fn run_folders(store: &crate::Store) -> Result<Vec<PathBuf>> {
    let mut folders: Vec<PathBuf> = store
        .registry()
        .experiments()?
        .into_iter()
        .map(|e| e.output_dir)
        .filter(|d| d.is_dir())
        .collect();
    let root = store.home().experiments();
    if let Ok(entries) = std::fs::read_dir(&root) {
        folders.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir() && !crate::doctor::is_hidden(p)),
        );
    }
    folders.sort();
    folders.dedup();
    Ok(folders)
}

/// The state of the run folder `folder`.
pub fn check_run(folder: &Path) -> RunCheck {
    let run = RunDir::new(folder);
    let life = match run.read_status() {
        Some(s) if s.status == RunStatus::Running => match s.pid {
            Some(pid) if ProcessId { pid, start: None }.is_alive() => RunLife::Running { pid },
            pid => RunLife::Died { pid },
        },
        _ => RunLife::Idle,
    };
    let leftovers = match life {
        RunLife::Running { .. } => Vec::new(),
        _ => run.leftovers(),
    };
    RunCheck {
        folder: folder.to_path_buf(),
        life,
        leftovers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder_with_status(status: &str, pid: u32) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("status.json"),
            format!(r#"{{"status":"{status}","message":"","pid":{pid}}}"#),
        )
        .unwrap();
        dir
    }

    #[test]
    fn a_running_status_whose_process_is_gone_died_and_is_repaired() {
        // A pid above the kernel's limit never runs.
        let dir = folder_with_status("running", 4_194_399);
        std::fs::create_dir(dir.path().join("checkpoint.tmp-4194399")).unwrap();
        let check = check_run(dir.path());
        assert_eq!(
            check.life,
            RunLife::Died {
                pid: Some(4_194_399)
            }
        );
        assert_eq!(check.leftovers.len(), 1);
        let done = check.repair().unwrap();
        assert_eq!(done.len(), 2, "{done:?}");
        let status = RunDir::new(dir.path()).read_status().unwrap();
        assert_eq!(status.status, RunStatus::Failed);
        assert!(status.message.contains("pid 4194399"), "{}", status.message);
        assert!(!check_run(dir.path()).needs_repair());
    }

    #[test]
    fn a_live_run_is_running_and_its_files_are_left_alone() {
        let dir = folder_with_status("running", std::process::id());
        std::fs::create_dir(dir.path().join("checkpoint.tmp-1")).unwrap();
        let check = check_run(dir.path());
        assert_eq!(
            check.life,
            RunLife::Running {
                pid: std::process::id()
            }
        );
        assert!(!check.needs_repair());
    }

    #[test]
    fn a_finished_run_is_idle() {
        let dir = folder_with_status("finished", 4_194_399);
        assert_eq!(check_run(dir.path()).life, RunLife::Idle);
    }
}
