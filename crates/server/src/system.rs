//! The machine's load for the home page: CPU, memory, disk of the home (and GPUs when the NVIDIA driver shows
//! any), read from `/proc` and `statvfs`.

use std::path::Path;

use serde::Serialize;

/// A snapshot of the machine.
#[derive(Debug, Clone, Serialize)]
pub struct SystemInfo {
    pub cpus: usize,
    /// One-minute load average.
    pub load: f64,
    pub memory_total: u64,
    pub memory_available: u64,
    pub disk_total: u64,
    pub disk_free: u64,
    /// The home's folder, whose disk is measured.
    pub storage: String,
    /// GPU names (empty without an NVIDIA driver).
    pub gpus: Vec<String>,
}

/// Reads the machine's state; `home` names the disk to measure.
pub fn read(home: &Path) -> SystemInfo {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |key: &str| -> u64 {
        meminfo
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let (disk_total, disk_free) = disk(home);
    let gpus = std::fs::read_dir("/proc/driver/nvidia/gpus")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| {
                    let info = std::fs::read_to_string(e.path().join("information")).ok()?;
                    info.lines()
                        .find_map(|l| l.strip_prefix("Model:"))
                        .map(|m| m.trim().to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    SystemInfo {
        cpus,
        load,
        memory_total: kib("MemTotal:"),
        memory_available: kib("MemAvailable:"),
        disk_total,
        disk_free,
        storage: home.display().to_string(),
        gpus,
    }
}

fn disk(path: &Path) -> (u64, u64) {
    use std::os::unix::ffi::OsStrExt;
    let mut probe = path;
    while !probe.exists() {
        match probe.parent() {
            Some(p) => probe = p,
            None => return (0, 0),
        }
    }
    let Ok(c) = std::ffi::CString::new(probe.as_os_str().as_bytes()) else {
        return (0, 0);
    };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a zeroed statvfs the call fills in.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return (0, 0);
        }
        let block = st.f_frsize as u64;
        (st.f_blocks as u64 * block, st.f_bavail as u64 * block)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_machine() {
        let info = super::read(std::path::Path::new("/tmp/does/not/exist"));
        assert!(info.cpus >= 1);
        assert!(info.memory_total > info.memory_available && info.memory_available > 0);
        assert!(info.disk_total >= info.disk_free && info.disk_total > 0);
    }
}
