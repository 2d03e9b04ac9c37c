//! The `ferrotune` binary: parses the command line, dispatches to one command, prints the error chain once and
//! returns an exit code. The work lives in the library crates.

mod commands;
mod printer;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tune_allocator();
    let cli = commands::Cli::parse();
    let printer = printer::Printer::new(cli.quiet);
    // The command runs on a compute-pool worker, so every parallel kernel splits without a thread hand-off. The
    // server is the exception: it waits on the network and hands each generation to the pool itself.
    let result = match cli.command {
        commands::Command::Serve(args) => commands::serve::run(args, &printer),
        command => ferrotune_model::threads::install(|| commands::run(command, &printer)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            printer.error(&chain_once(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: a layer whose message already quotes its cause (`cannot write
/// `x`: No space left on device`) is not followed by that cause again. The `help:` lines come last.
fn chain_once(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let message = cause.to_string();
        let (problem, help) = match message.find("\nhelp: ") {
            Some(at) => (message[..at].to_string(), Some(message[at..].to_string())),
            None => (message.clone(), None),
        };
        if !text.contains(problem.trim()) {
            if text.is_empty() {
                text = problem;
            } else {
                let (head, tail) = match text.find("\nhelp: ") {
                    Some(at) => (text[..at].to_string(), text[at..].to_string()),
                    None => (text.clone(), String::new()),
                };
                text = format!("{head}: {problem}{tail}");
            }
        }
        if let Some(help) = help.filter(|h| !text.contains(h.trim())) {
            text.push_str(&help);
        }
    }
    text
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Keeps glibc from returning large tensor buffers to the kernel after every op (each candle op allocates; page
/// faults and mmap/munmap otherwise dominate CPU profiles). Environment settings of the user win.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let user_set = [
            "MALLOC_MMAP_THRESHOLD_",
            "MALLOC_TRIM_THRESHOLD_",
            "MALLOC_TOP_PAD_",
        ]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
        if !user_set {
            // SAFETY: mallopt only changes allocator tuning parameters; called before any other thread exists.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
                libc::mallopt(libc::M_TOP_PAD, 256 << 20);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::chain_once;

    /// A library error that quotes its cause and also returns it as its source (as thiserror's `{0}` with
    /// `#[source]` does).
    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "tensor computation failed: {}", self.0)
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn each_cause_is_said_once_and_help_comes_last() {
        let io = std::io::Error::other("No space left on device");
        let err = anyhow::Error::new(Outer(io)).context("experiment `x` failed");
        assert_eq!(
            chain_once(&err),
            "experiment `x` failed: tensor computation failed: No space left on device"
        );
        let err =
            anyhow::anyhow!("no column `a`\nhelp: its columns are `b`").context("import failed");
        assert_eq!(
            chain_once(&err),
            "import failed: no column `a`\nhelp: its columns are `b`"
        );
    }
}
