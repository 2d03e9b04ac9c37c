//! A Hugging Face model (with its adapter merged, [`crate::merge::MergedWeights`]) → a llama.cpp GGUF file, and
//! a PEFT LoRA adapter → a llama.cpp adapter GGUF. The inverse of [`super::import_gguf`]: llama.cpp's tensor
//! names ([`super::tensors::gguf_tensor_name`]), its Q/K row permutation for `llama`, its hyper-parameter keys,
//! the tokenizer ([`super::vocab`]), and llama-quantize's choice of which tensors get which type.

use std::path::Path;

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};

use super::config::llama3_rope_factors;
use super::tensors::{gguf_layer, gguf_tensor_name, permute_rows};
use super::types::Value;
use super::vocab::VocabMetadata;
use super::writer::{encode, fits, GgufWriter, TensorSpec};
use super::GgufError;
use crate::adapter::PeftAdapter;
use crate::config::{Architecture, ModelConfig, RopeScaling};
use crate::merge::MergedWeights;

/// The tensor type mix of an exported GGUF (llama.cpp's `--outtype` / `llama-quantize` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufType {
    F32,
    F16,
    Bf16,
    Q8_0,
    Q4_0,
    Q4KM,
    Q5KM,
    Q6K,
}

impl GgufType {
    pub const ALL: [GgufType; 8] = [
        GgufType::F32,
        GgufType::F16,
        GgufType::Bf16,
        GgufType::Q8_0,
        GgufType::Q4_0,
        GgufType::Q4KM,
        GgufType::Q5KM,
        GgufType::Q6K,
    ];

    /// The name in file names and on the command line (`q4_k_m`).
    pub fn name(self) -> &'static str {
        match self {
            GgufType::F32 => "f32",
            GgufType::F16 => "f16",
            GgufType::Bf16 => "bf16",
            GgufType::Q8_0 => "q8_0",
            GgufType::Q4_0 => "q4_0",
            GgufType::Q4KM => "q4_k_m",
            GgufType::Q5KM => "q5_k_m",
            GgufType::Q6K => "q6_k",
        }
    }

    /// The type of a name (case-insensitive).
    pub fn parse(name: &str) -> Option<GgufType> {
        let name = name.to_ascii_lowercase();
        GgufType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// llama.cpp's `general.file_type` (`LLAMA_FTYPE_*`).
    pub fn file_type(self) -> u32 {
        match self {
            GgufType::F32 => 0,
            GgufType::F16 => 1,
            GgufType::Q4_0 => 2,
            GgufType::Q8_0 => 7,
            GgufType::Q4KM => 15,
            GgufType::Q5KM => 17,
            GgufType::Q6K => 18,
            GgufType::Bf16 => 32,
        }
    }

    /// The type of most matrices.
    fn base(self) -> GgmlDType {
        match self {
            GgufType::F32 => GgmlDType::F32,
            GgufType::F16 => GgmlDType::F16,
            GgufType::Bf16 => GgmlDType::BF16,
            GgufType::Q8_0 => GgmlDType::Q8_0,
            GgufType::Q4_0 => GgmlDType::Q4_0,
            GgufType::Q4KM => GgmlDType::Q4K,
            GgufType::Q5KM => GgmlDType::Q5K,
            GgufType::Q6K => GgmlDType::Q6K,
        }
    }

    fn is_quantized(self) -> bool {
        !matches!(self, GgufType::F32 | GgufType::F16 | GgufType::Bf16)
    }

    /// The type llama-quantize gives tensor `name` (row-major `shape`) of a model with `n_layers` layers
    /// (`tied`: the embedding is also the output): vectors stay f32; the output (or a tied embedding) goes to
    /// q6_k; in q4_k_m / q5_k_m `attn_v` and `ffn_down` of the first and last eighth of the layers and every
    /// third one between go to q6_k; a row length that is no multiple of the type's block falls back
    /// (q4_k → q5_0, q5_k → q5_1, q6_k → q8_0, then f16), as llama.cpp does.
    pub fn tensor_type(
        self,
        name: &str,
        shape: &[usize],
        n_layers: usize,
        tied: bool,
    ) -> GgmlDType {
        if shape.len() < 2 {
            return GgmlDType::F32;
        }
        let cols = shape[shape.len() - 1];
        let base = self.base();
        let is_output = name == "output.weight" || (tied && name == "token_embd.weight");
        let more_bits =
            |l: usize| l < n_layers / 8 || l >= 7 * n_layers / 8 || (l - n_layers / 8) % 3 == 2;
        let mut ty = base;
        if self.is_quantized() {
            if is_output {
                ty = if !cols.is_multiple_of(256) {
                    GgmlDType::Q8_0
                } else if base != GgmlDType::Q8_0 {
                    GgmlDType::Q6K
                } else {
                    base
                };
            } else if matches!(self, GgufType::Q4KM | GgufType::Q5KM)
                && (name.ends_with(".attn_v.weight") || name.ends_with(".ffn_down.weight"))
                && gguf_layer(name).is_some_and(more_bits)
            {
                ty = GgmlDType::Q6K;
            }
        }
        if !fits(ty, cols) {
            ty = match ty {
                GgmlDType::Q4K => GgmlDType::Q5_0,
                GgmlDType::Q5K => GgmlDType::Q5_1,
                GgmlDType::Q6K => GgmlDType::Q8_0,
                other => other,
            };
        }
        if !fits(ty, cols) {
            ty = GgmlDType::F16;
        }
        ty
    }
}

/// llama.cpp's architecture name for a model (Mistral is written as `llama`, as its converter does).
pub fn gguf_architecture(config: &ModelConfig) -> &'static str {
    match config.architecture {
        Architecture::Llama | Architecture::Mistral => "llama",
        Architecture::Qwen2 => "qwen2",
    }
}

/// The `general.*` and `<arch>.*` metadata of a model.
fn model_metadata(config: &ModelConfig, name: &str, ty: GgufType) -> Vec<(String, Value)> {
    let arch = gguf_architecture(config);
    let mut m: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        ("general.type".into(), Value::String("model".into())),
        ("general.name".into(), Value::String(name.into())),
        ("general.file_type".into(), Value::U32(ty.file_type())),
        ("general.quantization_version".into(), Value::U32(2)),
    ];
    let mut put = |k: &str, v: Value| m.push((format!("{arch}.{k}"), v));
    let u = |n: usize| Value::U32(n as u32);
    put("vocab_size", u(config.vocab_size));
    put("context_length", u(config.max_position_embeddings));
    put("embedding_length", u(config.hidden_size));
    put("block_count", u(config.num_layers));
    put("feed_forward_length", u(config.intermediate_size));
    put("rope.dimension_count", u(config.head_dim));
    put("rope.freq_base", Value::F32(config.rope_theta as f32));
    put("attention.head_count", u(config.num_heads));
    put("attention.head_count_kv", u(config.num_kv_heads));
    put(
        "attention.layer_norm_rms_epsilon",
        Value::F32(config.rms_norm_eps as f32),
    );
    if config.head_dim * config.num_heads != config.hidden_size {
        put("attention.key_length", u(config.head_dim));
        put("attention.value_length", u(config.head_dim));
    }
    if let RopeScaling::Linear { factor } = config.rope_scaling {
        put("rope.scaling.type", Value::String("linear".into()));
        put("rope.scaling.factor", Value::F32(factor as f32));
    }
    m
}

/// What [`write_model_gguf`] wrote.
#[derive(Debug, Clone)]
pub struct GgufSummary {
    pub tensors: usize,
    pub bytes: u64,
    /// Tensors per ggml type name (e.g. `{"Q6_K": 5, "Q4_K": 20, "F32": 9}`).
    pub types: std::collections::BTreeMap<String, usize>,
    pub warnings: Vec<String>,
}

/// One tensor of the export: its GGUF spec and where its values come from.
struct Planned {
    spec: TensorSpec,
    /// The backbone tensor (`None`: the computed `rope_freqs.weight`).
    hf: Option<String>,
    /// Rows permuted for this many heads.
    permute: Option<usize>,
}

/// Writes `weights` (merged) as a GGUF of type `ty` to `path`, with `vocab`'s tokenizer keys, the chat
/// template, and `name` as `general.name`. `progress(done, total)` is called after each tensor.
pub fn write_model_gguf(
    weights: &MergedWeights,
    vocab: VocabMetadata,
    chat_template: Option<&str>,
    name: &str,
    ty: GgufType,
    path: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<GgufSummary, GgufError> {
    let config = weights.config();
    let permute_qk = gguf_architecture(config) == "llama";
    let mut plan = Vec::new();
    for hf in weights.names() {
        if config.tie_word_embeddings && hf == "lm_head.weight" {
            continue; // a tied head is the embedding: llama.cpp reads `token_embd` for both
        }
        let Some(gguf) = gguf_tensor_name(&hf) else {
            // Buffers transformers keeps beside the weights (e.g. `rotary_emb.inv_freq`) have no GGUF tensor.
            if hf.ends_with("inv_freq") {
                continue;
            }
            return Err(GgufError::UnexpectedTensor {
                path: weights.weights().dir().join("model.safetensors"),
                tensor: hf,
                architecture: gguf_architecture(config),
            });
        };
        let shape = weights.shape(&hf).map_err(|e| GgufError::Malformed {
            path: weights.weights().dir().to_path_buf(),
            offset: 0,
            detail: e.to_string(),
        })?;
        let permute = match gguf.split('.').nth(2) {
            Some("attn_q") if permute_qk => Some(config.num_heads),
            Some("attn_k") if permute_qk => Some(config.num_kv_heads),
            _ => None,
        };
        let dtype = ty.tensor_type(&gguf, &shape, config.num_layers, config.tie_word_embeddings);
        plan.push(Planned {
            spec: TensorSpec {
                name: gguf,
                shape,
                dtype,
            },
            hf: Some(hf),
            permute,
        });
    }
    let rope_freqs = match config.rope_scaling {
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => Some(llama3_rope_factors(
            config.head_dim,
            config.rope_theta,
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        )),
        _ => None,
    };
    if let Some(f) = &rope_freqs {
        plan.push(Planned {
            spec: TensorSpec {
                name: "rope_freqs.weight".into(),
                shape: vec![f.len()],
                dtype: GgmlDType::F32,
            },
            hf: None,
            permute: None,
        });
    }
    // llama.cpp reads tensors in any order; tokens first keeps the file's layout like the converter's.
    plan.sort_by_key(|p| order_key(&p.spec.name));

    let mut metadata = model_metadata(config, name, ty);
    let warnings = vocab.warnings;
    metadata.extend(vocab.entries);
    if let Some(t) = chat_template {
        metadata.push(("tokenizer.chat_template".into(), Value::String(t.into())));
    }
    let specs: Vec<TensorSpec> = plan.iter().map(|p| p.spec.clone()).collect();
    let bytes = specs.iter().map(TensorSpec::bytes).sum();
    let mut types = std::collections::BTreeMap::new();
    for s in &specs {
        *types
            .entry(super::ggml_type_name(super::ggml_id(s.dtype)))
            .or_insert(0) += 1;
    }
    let mut writer = GgufWriter::create(path, &metadata, specs)?;
    let total = plan.len();
    for (i, p) in plan.iter().enumerate() {
        let values = match (&p.hf, &rope_freqs) {
            (Some(hf), _) => {
                let t = weights.tensor(hf).map_err(|e| GgufError::Malformed {
                    path: weights.weights().dir().to_path_buf(),
                    offset: 0,
                    detail: format!("tensor `{hf}`: {e}"),
                })?;
                match p.permute {
                    Some(heads) => {
                        let rows = p.spec.shape[0];
                        let v = t
                            .flatten_all()
                            .and_then(|t| t.to_vec1::<f32>())
                            .map_err(candle(&p.spec.name))?;
                        Tensor::from_vec(permute_rows(&v, rows, heads), t.shape(), &Device::Cpu)
                            .map_err(candle(&p.spec.name))?
                    }
                    None => t,
                }
            }
            (None, Some(f)) => {
                let f: Vec<f32> = f.iter().map(|&x| x as f32).collect();
                Tensor::from_vec(f, p.spec.shape.as_slice(), &Device::Cpu)
                    .map_err(candle(&p.spec.name))?
            }
            (None, None) => unreachable!("only rope_freqs is computed"),
        };
        let data = encode(&values, p.spec.dtype).map_err(candle(&p.spec.name))?;
        drop(values);
        writer.write(&p.spec.name, &data)?;
        progress(i + 1, total);
    }
    writer.finish()?;
    Ok(GgufSummary {
        tensors: total,
        bytes,
        types,
        warnings,
    })
}

fn candle(tensor: &str) -> impl Fn(candle_core::Error) -> GgufError + '_ {
    move |e| GgufError::Dequantize {
        tensor: tensor.to_string(),
        ggml_type: "export".into(),
        source: Box::new(e),
    }
}

/// Tensors sorted as llama.cpp's converter writes them: embedding, layers in order, then the rest.
fn order_key(name: &str) -> (usize, usize, String) {
    match gguf_layer(name) {
        _ if name == "token_embd.weight" => (0, 0, String::new()),
        _ if name == "rope_freqs.weight" => (0, 1, String::new()),
        Some(l) => (1, l, name.to_string()),
        None => (2, 0, name.to_string()),
    }
}

/// Writes `adapter` as a llama.cpp LoRA adapter GGUF (`general.type = adapter`, `adapter.type = lora`,
/// `adapter.lora.alpha`; tensors `blk.N.<t>.weight.lora_a` / `.lora_b` in f32), for `llama-cli --lora` and
/// Ollama's `ADAPTER`. llama.cpp scales by `alpha / r`, so an rsLoRA adapter's alpha is written as `alpha·√r`.
/// DoRA has no llama.cpp adapter form and is refused (merge it instead).
pub fn write_adapter_gguf(
    adapter: &PeftAdapter,
    config: &ModelConfig,
    name: &str,
    path: &Path,
) -> Result<usize, GgufError> {
    let bad = |detail: String| GgufError::BadHyperparameters {
        path: adapter.weights_path(),
        detail,
    };
    if adapter.config.use_dora {
        return Err(bad("it is a DoRA adapter, which llama.cpp cannot apply as an adapter; export the merged model (`--format gguf`) instead".into()));
    }
    let spec = adapter.spec();
    let alpha = spec.scale() * spec.r as f64;
    let arch = gguf_architecture(config);
    let metadata = vec![
        (
            "general.architecture".to_string(),
            Value::String(arch.into()),
        ),
        ("general.type".into(), Value::String("adapter".into())),
        ("general.name".into(), Value::String(name.into())),
        ("adapter.type".into(), Value::String("lora".into())),
        ("adapter.lora.alpha".into(), Value::F32(alpha as f32)),
    ];
    let permute_qk = arch == "llama";
    let mut tensors: Vec<(TensorSpec, Tensor)> = Vec::new();
    for module in adapter.module_paths() {
        let weight = format!("{module}.weight");
        let gguf = gguf_tensor_name(&weight)
            .ok_or_else(|| bad(format!("module `{module}` has no llama.cpp tensor")))?;
        let update = adapter
            .module(&module)
            .map_err(|e| bad(e.to_string()))?
            .expect("listed modules have updates");
        let to_f32 = |t: &Tensor| t.to_dtype(candle_core::DType::F32).map_err(candle(&gguf));
        let a = to_f32(update.a)?;
        let mut b = to_f32(update.b)?;
        let heads = match gguf.split('.').nth(2) {
            Some("attn_q") if permute_qk => Some(config.num_heads),
            Some("attn_k") if permute_qk => Some(config.num_kv_heads),
            _ => None,
        };
        if let Some(heads) = heads {
            // The delta B·A is permuted by rows: permuting B's rows is the same.
            let rows = b.dims()[0];
            let v = b
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(candle(&gguf))?;
            b = Tensor::from_vec(permute_rows(&v, rows, heads), b.shape(), &Device::Cpu)
                .map_err(candle(&gguf))?;
        }
        for (suffix, t) in [("lora_a", a), ("lora_b", b)] {
            tensors.push((
                TensorSpec {
                    name: format!("{gguf}.{suffix}"),
                    shape: t.dims().to_vec(),
                    dtype: GgmlDType::F32,
                },
                t,
            ));
        }
    }
    tensors.sort_by_key(|(s, _)| order_key(&s.name));
    let specs = tensors.iter().map(|(s, _)| s.clone()).collect();
    let mut writer = GgufWriter::create(path, &metadata, specs)?;
    for (spec, t) in &tensors {
        writer.write(
            &spec.name,
            &encode(t, spec.dtype).map_err(candle(&spec.name))?,
        )?;
    }
    writer.finish()?;
    Ok(tensors.len())
}
