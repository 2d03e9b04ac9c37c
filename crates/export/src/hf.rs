//! The merged Hugging Face folder: weights `W + s·B·A` (DoRA as PEFT merges it) streamed tensor by tensor
//! into safetensors shards with the backbone's tensor names, `config.json` with the dtype (and, for a head,
//! transformers' `…ForSequenceClassification` with `score.weight`), the tokenizer files and chat template,
//! `generation_config.json` from the run's prediction settings, the model card and the run's `cfg.yaml`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use ferrotune_config::ProblemType;
use ferrotune_model::merge::MergedWeights;
use ferrotune_model::save::{shard_file_name, shard_index, shard_plan, SafetensorsWriter};
use ferrotune_model::DType;
use ferrotune_train::head::{Head, HeadLoss};

use crate::error::{io, Error, Result};
use crate::stage::{write, write_json, Staged};
use crate::template::{self, TemplateSource};
use crate::{ExportDtype, ExportOptions, Progress, RunSource};

/// Tokenizer files copied from the backbone when present.
const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "special_tokens_map.json",
];

/// Writes the merged folder; returns (dtype name, merged modules, warnings).
pub fn export_hf(
    source: &RunSource,
    options: &ExportOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<(String, usize, Vec<String>)> {
    let weights = MergedWeights::open(&source.base, source.adapter.as_deref())?;
    let dtype = options
        .dtype
        .unwrap_or_else(|| default_dtype(source, &weights));
    let (template, tokenizer) = template::of_source(source)?;

    // The tensors to write: the backbone's, a head's `score.weight` instead of the LM head.
    let mut names: Vec<(String, Vec<usize>)> = Vec::new();
    for name in weights.names() {
        if source.head.is_some() && name == "lm_head.weight" {
            continue;
        }
        let shape = weights.shape(&name)?;
        names.push((name, shape));
    }
    if let Some(head) = &source.head {
        names.push((
            "score.weight".into(),
            head.weight.as_tensor().dims().to_vec(),
        ));
    }
    let out_dtype = |name: &str, stored: DType| -> DType {
        // Integer buffers (position ids) stay as they are; every float tensor takes the export's dtype.
        if name == "score.weight" || stored.is_float() {
            dtype.dtype()
        } else {
            stored
        }
    };
    let mut specs = Vec::new();
    for (name, shape) in &names {
        let stored = weights.weights().dtype_of(name).unwrap_or(DType::F32);
        specs.push((name.clone(), out_dtype(name, stored), shape.clone()));
    }
    let sizes: Vec<usize> = specs
        .iter()
        .map(|(_, d, s)| s.iter().product::<usize>() * d.size_in_bytes())
        .collect();
    let total: usize = sizes.iter().sum();
    let staged = Staged::create(&options.out, total as u64)?;
    let plan = shard_plan(&sizes, options.max_shard_bytes);
    let mut weight_map = BTreeMap::new();
    let mut done = 0;
    for (i, range) in plan.iter().enumerate() {
        let file = if plan.len() == 1 {
            "model.safetensors".to_string()
        } else {
            shard_file_name(i, plan.len())
        };
        let mut writer =
            SafetensorsWriter::create(&staged.dir.join(&file), specs[range.clone()].to_vec())?;
        for (name, _, _) in &specs[range.clone()] {
            let t = match (&source.head, name.as_str()) {
                (Some(head), "score.weight") => head.weight.as_tensor().clone(),
                _ => weights.tensor(name)?,
            };
            writer.write(name, &t)?;
            weight_map.insert(name.clone(), file.clone());
            done += 1;
            progress(Progress {
                done,
                total: specs.len(),
            });
        }
        writer.finish()?;
    }
    if plan.len() > 1 {
        write(
            &staged.dir,
            "model.safetensors.index.json",
            shard_index(&weight_map, total),
        )?;
    }

    write_json(
        &staged.dir,
        "config.json",
        &config_json(source, dtype, &tokenizer)?,
    )?;
    write_tokenizer_files(source, template.as_ref(), &tokenizer, &staged.dir)?;
    write_json(
        &staged.dir,
        "generation_config.json",
        &generation_config(source, &tokenizer)?,
    )?;
    let family = template
        .as_ref()
        .and_then(|t| crate::modelfile::Family::of(t).ok());
    write(
        &staged.dir,
        "README.md",
        crate::card::model_card(
            source,
            crate::card::CardFormat::Hf { dtype },
            family.as_ref(),
        ),
    )?;
    std::fs::copy(source.run.config(), staged.dir.join("cfg.yaml"))
        .map_err(io(&staged.dir.join("cfg.yaml")))?;
    staged.commit()?;
    Ok((
        dtype.name().to_string(),
        weights.adapted_modules(),
        Vec::new(),
    ))
}

/// The backbone's stored float type; float16 for a run on an int8/int4 backbone (H2O's choice), as the merge
/// needs a float backbone.
fn default_dtype(source: &RunSource, weights: &MergedWeights) -> ExportDtype {
    if source.quantized() {
        return ExportDtype::Float16;
    }
    weights
        .weights()
        .main_dtype()
        .and_then(|d| ExportDtype::of_stored(&d))
        .unwrap_or(ExportDtype::Float32)
}

/// The base's config.json with the export's dtype; a head makes it transformers' sequence classifier.
fn config_json(
    source: &RunSource,
    dtype: ExportDtype,
    tok: &ferrotune_data::TextTokenizer,
) -> Result<Value> {
    let path = source.base.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let mut config: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let fields = config
        .as_object_mut()
        .ok_or_else(|| Error::Config(format!("{} is not a JSON object", path.display())))?;
    fields.remove("quantization_config");
    fields.insert("torch_dtype".into(), json!(dtype.name()));
    if fields.contains_key("dtype") {
        fields.insert("dtype".into(), json!(dtype.name()));
    }
    if let Some(head) = &source.head {
        head_config(fields, head, tok);
    }
    Ok(config)
}

/// transformers' `…ForSequenceClassification` fields for a head: `num_labels`, `id2label` / `label2id`,
/// `problem_type` (regression; single-label for softmax classes; multi-label for sigmoid outputs, binary too),
/// and a `pad_token_id` (it pools the last non-pad token).
fn head_config(
    fields: &mut serde_json::Map<String, Value>,
    head: &Head,
    tok: &ferrotune_data::TextTokenizer,
) {
    let m = &head.mapping;
    let causal = fields
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Value::as_str)
        .unwrap_or("LlamaForCausalLM")
        .to_string();
    let class = causal.replace("ForCausalLM", "ForSequenceClassification");
    fields.insert("architectures".into(), json!([class]));
    fields.insert("num_labels".into(), json!(m.outputs));
    let id2label: serde_json::Map<String, Value> = (0..m.outputs)
        .map(|k| (k.to_string(), json!(m.output_label(k))))
        .collect();
    let label2id: serde_json::Map<String, Value> = (0..m.outputs)
        .map(|k| (m.output_label(k), json!(k)))
        .collect();
    fields.insert("id2label".into(), Value::Object(id2label));
    fields.insert("label2id".into(), Value::Object(label2id));
    let problem = match (m.problem_type, m.loss) {
        (ProblemType::TextCausalRegressionModeling, _) => "regression",
        (_, HeadLoss::CrossEntropy) => "single_label_classification",
        _ => "multi_label_classification",
    };
    fields.insert("problem_type".into(), json!(problem));
    if fields.get("pad_token_id").is_none_or(Value::is_null) {
        let pad = tok
            .pad_token()
            .or(tok.eos_token())
            .and_then(|t| tok.token_id(t));
        if let Some(id) = pad {
            fields.insert("pad_token_id".into(), json!(id));
        }
    }
}

/// Copies the backbone's tokenizer files and writes the chat template (ours for marker runs, into both
/// `chat_template.jinja` and `tokenizer_config.json`), and `special_tokens_map.json` when the backbone has none.
fn write_tokenizer_files(
    source: &RunSource,
    template: Option<&TemplateSource>,
    tok: &ferrotune_data::TextTokenizer,
    dir: &std::path::Path,
) -> Result<()> {
    for name in TOKENIZER_FILES {
        let from = source.backbone.join(name);
        if from.is_file() {
            std::fs::copy(&from, dir.join(name)).map_err(io(&dir.join(name)))?;
        }
    }
    let cfg_path = source.backbone.join("tokenizer_config.json");
    let mut tcfg: Value = match std::fs::read_to_string(&cfg_path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", cfg_path.display())))?,
        Err(_) => json!({"tokenizer_class": "PreTrainedTokenizerFast"}),
    };
    for (key, value) in [
        ("bos_token", tok.bos_token()),
        ("eos_token", tok.eos_token()),
        ("pad_token", tok.pad_token()),
    ] {
        if let (Some(v), None) = (value, tcfg.get(key)) {
            tcfg[key] = json!(v);
        }
    }
    match template {
        Some(TemplateSource::Markers(m)) => {
            let jinja = m.jinja();
            tcfg["chat_template"] = json!(jinja);
            write(dir, "chat_template.jinja", &jinja)?;
        }
        Some(TemplateSource::Backbone(_)) | None => {
            let jinja = source.backbone.join("chat_template.jinja");
            if jinja.is_file() {
                std::fs::copy(&jinja, dir.join("chat_template.jinja"))
                    .map_err(io(&dir.join("chat_template.jinja")))?;
            }
        }
    }
    write_json(dir, "tokenizer_config.json", &tcfg)?;
    if !dir.join("special_tokens_map.json").is_file() {
        let mut map = serde_json::Map::new();
        for (key, value) in [
            ("bos_token", tok.bos_token()),
            ("eos_token", tok.eos_token()),
            ("pad_token", tok.pad_token()),
        ] {
            if let Some(v) = value {
                map.insert(key.into(), json!(v));
            }
        }
        write_json(dir, "special_tokens_map.json", &Value::Object(map))?;
    }
    Ok(())
}

/// generation_config.json: the backbone's token ids, the run's prediction settings, and the tokenizer's EOS
/// among the end tokens (what the run's answers ended with).
fn generation_config(source: &RunSource, tok: &ferrotune_data::TextTokenizer) -> Result<Value> {
    let path = source.backbone.join("generation_config.json");
    let mut g: Value = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).unwrap_or_else(|_| json!({})),
        Err(_) => json!({}),
    };
    if !g.is_object() {
        g = json!({});
    }
    let p = &source.config.prediction;
    g["do_sample"] = json!(p.do_sample);
    g["max_new_tokens"] = json!(p.max_length_inference);
    g["min_new_tokens"] = json!(p.min_length_inference);
    g["num_beams"] = json!(p.num_beams);
    g["repetition_penalty"] = json!(p.repetition_penalty);
    if p.do_sample {
        g["temperature"] = json!(p.temperature);
        g["top_p"] = json!(p.top_p);
        g["top_k"] = json!(p.top_k);
    } else if let Some(map) = g.as_object_mut() {
        for key in ["temperature", "top_p", "top_k"] {
            map.remove(key);
        }
    }
    let mut eos: Vec<u32> = match &g["eos_token_id"] {
        Value::Number(n) => n.as_u64().map(|n| vec![n as u32]).unwrap_or_default(),
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_u64().map(|n| n as u32))
            .collect(),
        _ => Vec::new(),
    };
    if let Some(id) = tok.eos_token().and_then(|t| tok.token_id(t)) {
        if !eos.contains(&id) {
            eos.push(id);
        }
    }
    match eos.as_slice() {
        [] => {}
        [one] => g["eos_token_id"] = json!(one),
        many => g["eos_token_id"] = json!(many),
    }
    if let Some(id) = tok.bos_token().and_then(|t| tok.token_id(t)) {
        g["bos_token_id"] = json!(id);
    }
    if let Some(id) = tok.pad_token().and_then(|t| tok.token_id(t)) {
        g["pad_token_id"] = json!(id);
    }
    let stops: Vec<&str> = p
        .stop_tokens
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if !stops.is_empty() {
        g["stop_strings"] = json!(stops);
    }
    Ok(g)
}
