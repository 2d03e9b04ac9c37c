//! Shared helpers: fixture tokenizers, files in a temporary folder, settings for small data.

use std::path::{Path, PathBuf};

use ferrotune_data::{DatasetSettings, Sample, TextTokenizer, IGNORE_INDEX};
use ferrotune_test_support::model_fixture;

/// A tiny fixture tokenizer of the model crate: `qwen2_tied` (no BOS) or `llama3_rope` (BOS `<|endoftext|>`);
/// both have EOS `<|im_end|>` (id 2) and pad `<|endoftext|>` (id 0).
pub fn tokenizer(name: &str) -> TextTokenizer {
    TextTokenizer::from_dir(&model_fixture(name)).expect("fixture tokenizer loads")
}

/// Writes `content` to `dir/name`.
pub use ferrotune_test_support::write_file as write;

/// Settings for `train` with the defaults, a fixed seed and custom validation on the same file (so every row is a
/// train sample).
pub fn settings(train: &Path) -> DatasetSettings {
    DatasetSettings {
        train_dataframe: train.to_path_buf(),
        validation_strategy: ferrotune_data::ValidationStrategy::Custom,
        validation_dataframe: Some(train.to_path_buf()),
        seed: 42,
        ..Default::default()
    }
}

/// The text of `ids` with special tokens.
pub fn decode(tok: &TextTokenizer, ids: &[u32]) -> String {
    tok.decode(ids, false).expect("decode")
}

/// The text of the labelled tokens of `sample`, with `|` between separate labelled spans.
pub fn labelled(tok: &TextTokenizer, sample: &Sample) -> String {
    let mut spans: Vec<Vec<u32>> = Vec::new();
    let mut previous_masked = true;
    for (&id, &label) in sample.input_ids.iter().zip(&sample.labels) {
        let masked = label == IGNORE_INDEX;
        if !masked {
            assert_eq!(label, i64::from(id), "a label differs from its input id");
            if previous_masked {
                spans.push(Vec::new());
            }
            spans.last_mut().expect("span").push(id);
        }
        previous_masked = masked;
    }
    spans
        .iter()
        .map(|s| decode(tok, s))
        .collect::<Vec<_>>()
        .join("|")
}

/// An Alpaca-style CSV.
pub fn alpaca_csv(dir: &Path) -> PathBuf {
    write(
        dir,
        "alpaca.csv",
        "instruction,input,output\nName a color.,,Blue.\nAdd the numbers.,2 and 3,5\n",
    )
}
