//! # ferrotune-test-support
//!
//! What the crates' integration tests share, written once: the tiny random-init backbones of
//! `crates/model/tests/fixtures` (real Hugging Face folders: `config.json`, `model.safetensors`, `tokenizer.json`),
//! comparing tensors, a small arithmetic training set with an experiment file that trains on it in a second,
//! reading the files a run leaves (`status.json`, `metrics.jsonl`, the PEFT adapter), and a temporary home.
//!
//! A dev-dependency only (`publish = false`). *Must not touch*: any Ferrotune crate but `ferrotune-home` (for
//! [`Home`]), so that every crate's tests can use it without a dependency cycle; library code never uses it.
//!
//! Start reading at [`model_fixture`], [`experiment_yaml`] and [`TempHome`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use ferrotune_home::Home;
use serde_json::Value;

/// The tiny fixture backbone `case` of the model crate (`llama3_rope`, `mistral_sharded`, `qwen2_tied`, …; each
/// folder's SOURCE.md names the script that wrote it).
pub fn model_fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures")
        .join(case)
}

/// The largest absolute difference between two slices of the same length (NaN if any difference is NaN).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "the compared values differ in length");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, |max, d| if d.is_nan() || d > max { d } else { max })
}

/// The largest absolute difference between two tensors of the same shape.
#[cfg(feature = "candle")]
pub fn max_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Every tensor of a `.safetensors` file, by name, as its f32 values (other dtypes fail the test).
pub fn read_f32_tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
            let values = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name, values)
        })
        .collect()
}

/// The tensors of the PEFT adapter a run saved (`RUN/adapter/adapter_model.safetensors`).
pub fn adapter_tensors(run_dir: &Path) -> BTreeMap<String, Vec<f32>> {
    read_f32_tensors(&run_dir.join("adapter/adapter_model.safetensors"))
}

/// The largest absolute difference between two sets of tensors that must have the same names and shapes.
pub fn max_tensors_diff(a: &BTreeMap<String, Vec<f32>>, b: &BTreeMap<String, Vec<f32>>) -> f32 {
    assert!(
        a.keys().eq(b.keys()),
        "the tensor names differ: {:?} vs {:?}",
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>()
    );
    a.iter()
        .map(|(name, values)| max_abs_diff(values, &b[name]))
        .fold(0.0, |max, d| if d.is_nan() || d > max { d } else { max })
}

/// Writes `content` to `dir/name` (creating the folders on the way) and returns its path.
pub fn write_file(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
    }
    std::fs::write(&path, content).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

/// Copies the folder `from` with everything in it to `to` (which must not exist yet).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
        }
    }
}

/// `n` rows of sums in Alpaca columns: `{"instruction": "Add 3 and 6.", "input": "", "output": "9"}`.
pub fn arithmetic_rows(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            serde_json::json!({
                "instruction": format!("Add {} and {}.", i, 2 * i),
                "input": "",
                "output": format!("{}", 3 * i),
            })
        })
        .collect()
}

/// Writes [`arithmetic_rows`]`(n)` as the JSON file `dir/name` and returns its path.
pub fn write_arithmetic_data(dir: &Path, name: &str, n: usize) -> PathBuf {
    write_file(
        dir,
        name,
        serde_json::to_string(&arithmetic_rows(n)).unwrap(),
    )
}

/// H2O LLM Studio 1.14's saved experiment `name` (`crates/config/tests/fixtures/h2o/<name>.yaml`) as it is, with
/// only what points at H2O's machine pointed here: the tiny `llama3_rope` backbone, the training data `train` and
/// the output folder `out`.
pub fn h2o_experiment(name: &str, train: &Path, out: &Path) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/tests/fixtures/h2o")
        .join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.replace(
        "LLM_BACKBONE",
        &model_fixture("llama3_rope").display().to_string(),
    )
    .replace("TRAIN_DATAFRAME", &train.display().to_string())
    .lines()
    .map(|l| {
        if l.starts_with("output_directory:") {
            format!("output_directory: {}", out.display())
        } else {
            l.to_string()
        }
    })
    .collect::<Vec<_>>()
    .join("\n")
        + "\n"
}

/// An experiment file that trains LoRA adapters on the tiny `llama3_rope` backbone with `train` (Alpaca
/// columns, 10 % held out for validation) into `output_root/{experiment_name}`: one epoch of batches of 4 at a
/// learning rate of 0.01, seed 7, 6 new tokens per validation answer. Tests vary it with `--key value`
/// overrides (`ferrotune_config::apply_overrides`, `StartOptions::overrides`).
pub fn experiment_yaml(name: &str, output_root: &Path, train: &Path) -> String {
    format!(
        "llm_backbone: {backbone}\noutput_directory: {out}/{{experiment_name}}\nexperiment_name: {name}\n\
         dataset:\n  train_dataframe: {train}\n  system_column: None\n  validation_size: 0.1\n\
         training:\n  learning_rate: 0.01\n  batch_size: 4\n  epochs: 1\n\
         environment:\n  seed: 7\nprediction:\n  max_length_inference: 6\n",
        backbone = model_fixture("llama3_rope").display(),
        out = output_root.display(),
        train = train.display(),
    )
}

/// The JSON file at `path`.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every line of the JSON-lines file at `path`.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

/// What `RUN/status.json` says (`{"status": "finished", "message": …}`).
pub fn run_status(run_dir: &Path) -> Value {
    read_json(&run_dir.join("status.json"))
}

/// The events of kind `event` (`step`, `evaluation`, `checkpoint`, `log`) in `RUN/metrics.jsonl`, in order.
pub fn run_events(run_dir: &Path, event: &str) -> Vec<Value> {
    read_jsonl(&run_dir.join("metrics.jsonl"))
        .into_iter()
        .filter(|e| e["event"] == event)
        .collect()
}

/// A temporary folder holding a Ferrotune home at `home/` and, beside it, the files a test writes; removed when
/// dropped.
pub struct TempHome {
    dir: tempfile::TempDir,
}

impl TempHome {
    pub fn new() -> TempHome {
        TempHome {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    /// The temporary folder (the home is its `home/`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The home.
    pub fn home(&self) -> Home {
        Home::new(self.dir.path().join("home"))
    }

    /// Writes `text` to `name` beside the home and returns its path.
    pub fn file(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        write_file(self.dir.path(), name, text)
    }
}

impl Default for TempHome {
    fn default() -> Self {
        TempHome::new()
    }
}
