//! The `README.md` model card of an export: Hugging Face's YAML front matter (`base_model`, `library_name`,
//! `tags`, the backbone card's `license`), then what was trained on what, the settings that matter, the final
//! metrics, and how to load the files with transformers, llama.cpp and Ollama.

use crate::modelfile::Family;
use crate::{ExportDtype, GgufType, RunSource};

/// Which files the card describes.
pub enum CardFormat {
    Hf { dtype: ExportDtype },
    Gguf { file: String, ty: GgufType },
    Adapter { file: String },
}

/// The `license:` of the backbone's own model card front matter.
fn backbone_license(source: &RunSource) -> Option<String> {
    let text = std::fs::read_to_string(source.backbone.join("README.md")).ok()?;
    let front = text.strip_prefix("---")?.split("\n---").next()?;
    front.lines().find_map(|l| {
        l.strip_prefix("license:")
            .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
            .filter(|v| !v.is_empty())
    })
}

/// The card's text.
pub fn model_card(source: &RunSource, format: CardFormat, family: Option<&Family>) -> String {
    let cfg = &source.config;
    let name = source.name();
    let base = source
        .backbone
        .file_name()
        .map_or("backbone".into(), |n| n.to_string_lossy().into_owned());
    let lora = source.adapter.is_some();
    let library = match format {
        CardFormat::Hf { .. } => "transformers",
        _ => "gguf",
    };
    let mut tags = vec![
        "ferrotune".to_string(),
        cfg.problem_type.to_string(),
        if lora { "lora" } else { "full-fine-tuning" }.into(),
    ];
    if library == "gguf" {
        tags.push("gguf".into());
    }
    let mut s = String::from("---\n");
    s.push_str(&format!("base_model: {}\n", yaml_str(&base)));
    s.push_str(&format!("library_name: {library}\n"));
    if let Some(license) = backbone_license(source) {
        s.push_str(&format!("license: {}\n", yaml_str(&license)));
    }
    s.push_str("tags:\n");
    for t in &tags {
        s.push_str(&format!("- {}\n", yaml_str(t)));
    }
    s.push_str("---\n\n");
    s.push_str(&format!(
        "# {name}\n\nFine-tuned with [Ferrotune](https://github.com/ferrotune) from `{base}` "
    ));
    s.push_str(&format!(
        "({}, problem type `{}`).\n\n",
        if lora {
            "LoRA adapter merged into the backbone"
        } else {
            "every weight trained"
        },
        cfg.problem_type
    ));
    s.push_str("## Training\n\n| setting | value |\n|---|---|\n");
    let t = &cfg.training;
    let rows: Vec<(&str, String)> = vec![
        ("dataset", cfg.dataset.train_dataframe.clone()),
        ("epochs", t.epochs.to_string()),
        ("batch size", t.batch_size.to_string()),
        ("learning rate", t.learning_rate.to_string()),
        ("optimizer", t.optimizer.to_string()),
        ("schedule", t.schedule.to_string()),
        ("max length", cfg.tokenizer.max_length.to_string()),
        (
            "backbone dtype",
            cfg.architecture.backbone_dtype.to_string(),
        ),
    ];
    for (k, v) in rows {
        s.push_str(&format!("| {k} | `{}` |\n", v.replace('|', "\\|")));
    }
    if lora {
        s.push_str(&format!(
            "| LoRA | r {} · alpha {}{}{} |\n",
            t.lora_r,
            t.lora_alpha,
            if t.use_rslora { " · rsLoRA" } else { "" },
            if t.use_dora { " · DoRA" } else { "" }
        ));
    }
    match &source.final_metric {
        Some((metric, value, loss)) => s.push_str(&format!(
            "\nFinal evaluation: {metric} {value:.4}, validation loss {loss:.4}{}.\n",
            match source.status {
                Some(st) => format!(" (run {})", st.name()),
                None => String::new(),
            }
        )),
        None => s.push_str("\nThe run has no evaluation.\n"),
    }
    if let Some(f) = family {
        s.push_str(&format!(
            "\nChat template: {} (what the model was trained with).\n",
            f.name()
        ));
    }
    s.push_str("\n## Use\n\n");
    match format {
        CardFormat::Hf { dtype } => {
            let class = if source.head.is_some() {
                "AutoModelForSequenceClassification"
            } else {
                "AutoModelForCausalLM"
            };
            s.push_str(&format!(
                "Weights in {}. With transformers:\n\n```python\nfrom transformers import {class}, AutoTokenizer\nmodel = {class}.from_pretrained(\"path/to/this/folder\")\ntokenizer = AutoTokenizer.from_pretrained(\"path/to/this/folder\")\n```\n\n",
                dtype.name()
            ));
            if source.head.is_none() {
                s.push_str("For llama.cpp and Ollama, export the GGUF: `ferrotune export RUN --format gguf --out DIR`, then `llama-cli -m DIR/<name>.q8_0.gguf` or `ollama create NAME -f DIR/Modelfile`.\n");
            }
        }
        CardFormat::Gguf { file, ty } => s.push_str(&format!(
            "GGUF `{file}` ({}). With llama.cpp: `llama-cli -m {file} -cnv`. With Ollama: `ollama create {} -f Modelfile`, then `ollama run {}`.\n",
            ty.name(),
            crate::source::file_stem(&name),
            crate::source::file_stem(&name)
        )),
        CardFormat::Adapter { file } => s.push_str(&format!(
            "llama.cpp LoRA adapter `{file}` for a GGUF of `{base}`: `llama-cli -m BASE.gguf --lora {file}`; in an Ollama Modelfile: `FROM BASE.gguf` and `ADAPTER ./{file}`.\n"
        )),
    }
    s
}

/// A YAML scalar, quoted when it needs to be.
fn yaml_str(s: &str) -> String {
    if s.chars().all(|c| c.is_alphanumeric() || "-_./".contains(c)) && !s.is_empty() {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("a string serializes")
    }
}
