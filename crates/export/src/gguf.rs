//! GGUF exports: the merged model as `<name>.<type>.gguf` with an Ollama `Modelfile` and a model card, or the
//! LoRA adapter alone as `<name>.lora.gguf`.

use ferrotune_model::gguf::export::{gguf_architecture, write_adapter_gguf, write_model_gguf};
use ferrotune_model::gguf::vocab::vocab_metadata;
use ferrotune_model::merge::MergedWeights;

use crate::card::{model_card, CardFormat};
use crate::error::{Error, Result};
use crate::modelfile::{modelfile, Family};
use crate::source::file_stem;
use crate::stage::{write, Staged};
use crate::{template, ExportOptions, Progress, RunSource};

fn refuse_head(source: &RunSource, format: &'static str) -> Result<()> {
    match &source.head {
        Some(head) => Err(Error::Unsupported {
            what: format!("a {} model (a linear head on the last hidden state)", head.mapping.head_name().replace('_', " ")),
            format,
            help: "llama.cpp runs causal language models; export the merged Hugging Face folder (`--format hf`), which transformers loads as `AutoModelForSequenceClassification`",
        }),
        None => Ok(()),
    }
}

/// Writes the merged GGUF (+ Modelfile); returns (type name, merged modules, warnings).
pub fn export_gguf(
    source: &RunSource,
    options: &ExportOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<(String, usize, Vec<String>)> {
    refuse_head(source, "GGUF")?;
    let weights = MergedWeights::open(&source.base, source.adapter.as_deref())?;
    let config = weights.config().clone();
    let (template, tok) = template::of_source(source)?;
    let stem = file_stem(&source.name());
    let file = format!("{stem}.{}.gguf", options.gguf_type.name());
    // Translate the template before writing anything: an unknown one fails fast.
    let eos = tok.eos_token().unwrap_or("").to_string();
    let modelfile_text = match (&template, options.modelfile) {
        (_, false) => None,
        (Some(t), true) => Some(modelfile(&file, t, &eos, &source.config)?),
        (None, true) => {
            return Err(Error::UnknownTemplate {
                start: "none: the backbone has no chat template".into(),
            })
        }
    };
    let vocab = vocab_metadata(
        &source.backbone,
        config.vocab_size,
        (config.bos_token_id, config.eos_token_ids.first().copied()),
    )?;
    let params: usize = weights
        .names()
        .iter()
        .filter_map(|n| weights.shape(n).ok())
        .map(|s| s.iter().product::<usize>())
        .sum();
    let bytes_per_param = match options.gguf_type.name() {
        "f32" => 4.0,
        "f16" | "bf16" => 2.0,
        "q8_0" | "q6_k" => 1.07,
        _ => 0.75,
    };
    let staged = Staged::create(&options.out, (params as f64 * bytes_per_param) as u64)?;
    let jinja = template.as_ref().map(|t| t.jinja());
    let summary = write_model_gguf(
        &weights,
        vocab,
        jinja.as_deref(),
        &source.name(),
        options.gguf_type,
        &staged.dir.join(&file),
        &mut |done, total| progress(Progress { done, total }),
    )?;
    if let Some(text) = modelfile_text {
        write(&staged.dir, "Modelfile", text)?;
    }
    let family = template.as_ref().and_then(|t| Family::of(t).ok());
    write(
        &staged.dir,
        "README.md",
        model_card(
            source,
            CardFormat::Gguf {
                file: file.clone(),
                ty: options.gguf_type,
            },
            family.as_ref(),
        ),
    )?;
    staged.commit()?;
    let types: Vec<String> = summary
        .types
        .iter()
        .map(|(t, n)| format!("{n}×{t}"))
        .collect();
    let mut warnings = summary.warnings;
    warnings.push(format!("{}: tensor types {}", file, types.join(", ")));
    Ok((
        options.gguf_type.name().to_string(),
        weights.adapted_modules(),
        warnings,
    ))
}

/// Writes the adapter as a llama.cpp LoRA GGUF; returns (type, modules, warnings).
pub fn export_adapter(
    source: &RunSource,
    options: &ExportOptions,
) -> Result<(String, usize, Vec<String>)> {
    refuse_head(source, "a llama.cpp adapter")?;
    let Some(adapter_dir) = &source.adapter else {
        return Err(Error::Unsupported {
            what: "a full fine-tuning (every weight trained, no adapter)".into(),
            format: "a LoRA adapter",
            help: "export the model itself: `--format gguf` or `--format hf`",
        });
    };
    let adapter = ferrotune_model::adapter::PeftAdapter::open(adapter_dir)?;
    if adapter.config.use_dora {
        return Err(Error::Unsupported {
            what: "a DoRA adapter".into(),
            format: "a llama.cpp adapter",
            help: "llama.cpp applies plain LoRA only; export the merged model instead (`--format gguf`)",
        });
    }
    let config = ferrotune_model::ModelConfig::from_dir(&source.backbone)?;
    let stem = file_stem(&source.name());
    let file = format!("{stem}.lora.gguf");
    let staged = Staged::create(&options.out, 1 << 20)?;
    let n = write_adapter_gguf(&adapter, &config, &source.name(), &staged.dir.join(&file))?;
    write(
        &staged.dir,
        "README.md",
        model_card(source, CardFormat::Adapter { file: file.clone() }, None),
    )?;
    staged.commit()?;
    Ok((
        format!("f32 LoRA ({})", gguf_architecture(&config)),
        n / 2,
        Vec::new(),
    ))
}
