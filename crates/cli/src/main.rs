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
            printer.error(&format!("{err:#}"));
            ExitCode::FAILURE
        }
    }
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
