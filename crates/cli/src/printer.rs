//! All terminal output goes through [`Printer`]: results on stdout, progress and errors on stderr.

use std::io::Write;

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
