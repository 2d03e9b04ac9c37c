//! All terminal output goes through [`Printer`]: results on stdout, progress and errors on stderr. A command the
//! user may run next is written with [`command`], as they invoke this binary.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

/// Writes results to stdout and messages to stderr (unless quiet).
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    quiet: bool,
}

impl Printer {
    pub fn new(quiet: bool) -> Self {
        Self { quiet }
    }

    /// Whether progress output is suppressed.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// A result line on stdout.
    pub fn line(&self, text: &str) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}")?;
        out.flush()
    }

    /// A piece of streamed text on stdout, flushed at once.
    pub fn stream(&self, text: &str) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    }

    /// A progress or status message on stderr (hidden with --quiet).
    pub fn status(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

    /// An error on stderr (always shown).
    pub fn error(&self, text: &str) {
        eprintln!("error: {text}");
    }
}

/// The command line `ferrotune <args>` as the user runs this binary: `cargo run --release -- <args>` when it was
/// built in a cargo `target/` folder (a newcomer who ran `cargo run --release -- demo` has no `ferrotune` on
/// PATH), else `ferrotune <args>`.
pub fn command(args: &str) -> String {
    static PROGRAM: OnceLock<&'static str> = OnceLock::new();
    let program = PROGRAM.get_or_init(|| {
        let exe = std::env::current_exe().ok();
        program_for(exe.as_deref())
    });
    format!("{program} {args}")
}

/// How to invoke the binary at `exe`.
fn program_for(exe: Option<&Path>) -> &'static str {
    let in_target = exe.is_some_and(|exe| {
        exe.ancestors()
            .skip(1)
            .any(|dir| dir.file_name().is_some_and(|n| n == "target"))
    });
    if in_target {
        "cargo run --release --"
    } else {
        "ferrotune"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_in_a_cargo_target_folder_is_run_through_cargo() {
        for exe in [
            "/src/ferrotune/target/release/ferrotune",
            "/src/ferrotune/target/debug/ferrotune",
            "/src/ferrotune/target/x86_64-unknown-linux-gnu/release/ferrotune",
        ] {
            assert_eq!(program_for(Some(Path::new(exe))), "cargo run --release --");
        }
        for exe in [
            "/home/me/.cargo/bin/ferrotune",
            "/usr/local/bin/ferrotune",
            "/opt/targets/ferrotune",
        ] {
            assert_eq!(program_for(Some(Path::new(exe))), "ferrotune");
        }
        assert_eq!(program_for(None), "ferrotune");
    }
}
