//! LoRA adapters on a whole model, and their files in PEFT's format (`adapter_config.json` +
//! `adapter_model.safetensors` with keys `base_model.model.<module>.lora_A.weight`, `….lora_B.weight`,
//! `….lora_magnitude_vector` for DoRA), so that `peft.PeftModel.from_pretrained` loads them unchanged.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{read_json, Error, Result};
use crate::lora::{LoraAdapter, LoraSpec, LORA_TARGETS};
use crate::models::Llama;

const PEFT_PREFIX: &str = "base_model.model.";

/// Attaches fresh adapters (PEFT initialisation, seeded) to every targeted linear layer; returns their number.
pub fn attach_lora(model: &mut Llama, spec: &LoraSpec, seed: u64) -> Result<usize> {
    if let Some(bad) = spec
        .target_modules
        .iter()
        .find(|t| !LORA_TARGETS.contains(&t.as_str()))
    {
        return Err(Error::InvalidAdapter(format!(
            "unknown LoRA target module `{bad}`; the modules are {}",
            LORA_TARGETS.join(", ")
        )));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut n = 0;
    for (_, short, linear) in model.linears_mut() {
        if spec.targets(short) {
            let adapter = LoraAdapter::init(spec, linear.weight(), &mut rng)?;
            linear.set_lora(Some(adapter));
            n += 1;
        }
    }
    Ok(n)
}

/// [`attach_lora`] with B drawn uniformly from ±`b_scale` (seeded) instead of zeros: adapters that change the
/// model's answers without training — what tests and benchmarks of serving many adapters use.
pub fn attach_random_lora(
    model: &mut Llama,
    spec: &LoraSpec,
    seed: u64,
    b_scale: f32,
) -> Result<usize> {
    let n = attach_lora(model, spec, seed)?;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0005_EEDB);
    for (_, _, linear) in model.linears() {
        if let Some(lora) = linear.lora() {
            let shape = lora.b.as_tensor().shape().clone();
            let values: Vec<f32> = (0..shape.elem_count())
                .map(|_| rng.random_range(-b_scale..b_scale))
                .collect();
            lora.b.set(&Tensor::from_vec(
                values,
                shape,
                lora.b.as_tensor().device(),
            )?)?;
        }
    }
    Ok(n)
}

/// The trainable tensors with their PEFT key names, in a fixed order (layer, module, A, B, magnitude).
pub fn lora_parameters(model: &Llama) -> Vec<(String, Var)> {
    let mut out = Vec::new();
    for (path, _, linear) in model.linears() {
        if let Some(l) = linear.lora() {
            out.push((format!("{PEFT_PREFIX}{path}.lora_A.weight"), l.a.clone()));
            out.push((format!("{PEFT_PREFIX}{path}.lora_B.weight"), l.b.clone()));
            if let Some(m) = &l.magnitude {
                out.push((
                    format!("{PEFT_PREFIX}{path}.lora_magnitude_vector"),
                    m.clone(),
                ));
            }
        }
    }
    out
}

/// `adapter_config.json` as PEFT writes it (the fields Ferrotune sets and reads; PEFT fills the rest with its
/// defaults when loading).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeftConfig {
    pub peft_type: String,
    pub task_type: Option<String>,
    pub r: usize,
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    pub target_modules: TargetModules,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default = "default_bias")]
    pub bias: String,
    pub base_model_name_or_path: Option<String>,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default = "default_true")]
    pub inference_mode: bool,
    #[serde(default = "default_true")]
    pub init_lora_weights: bool,
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
}

fn default_bias() -> String {
    "none".into()
}

fn default_true() -> bool {
    true
}

/// `target_modules`: a list, or a regex string (only plain module-name alternations are understood).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    List(Vec<String>),
    Pattern(String),
}

/// Writes the model's adapters into `dir` in PEFT's format (through a temporary folder renamed into place).
pub fn save_peft(model: &Llama, spec: &LoraSpec, base_model: &str, dir: &Path) -> Result<()> {
    let params = lora_parameters(model);
    if params.is_empty() {
        return Err(Error::InvalidAdapter(
            "the model has no LoRA adapters to save".into(),
        ));
    }
    let mut targets: Vec<String> = model
        .linears()
        .into_iter()
        .filter(|(_, _, l)| l.lora().is_some())
        .map(|(_, short, _)| short.to_string())
        .collect();
    targets.sort();
    targets.dedup();
    let config = PeftConfig {
        peft_type: "LORA".into(),
        task_type: Some("CAUSAL_LM".into()),
        r: spec.r,
        lora_alpha: spec.alpha,
        lora_dropout: spec.dropout as f64,
        target_modules: TargetModules::List(targets),
        use_rslora: spec.use_rslora,
        use_dora: spec.use_dora,
        bias: default_bias(),
        base_model_name_or_path: Some(base_model.to_string()),
        fan_in_fan_out: false,
        inference_mode: true,
        init_lora_weights: true,
        modules_to_save: None,
    };
    let tensors: HashMap<String, Tensor> = params
        .into_iter()
        .map(|(k, v)| v.as_tensor().to_dtype(DType::F32).map(|t| (k, t)))
        .collect::<std::result::Result<_, _>>()?;
    // Staged in a temporary sibling and swapped in whole: a reader sees the old adapter or the new one.
    let tmp = ferrotune_home::atomic::temp_sibling(dir);
    std::fs::create_dir_all(&tmp).map_err(|source| Error::Io {
        path: tmp.clone(),
        source,
    })?;
    let write = || -> Result<()> {
        let json = serde_json::to_string_pretty(&config)
            .map_err(|e| Error::InvalidAdapter(e.to_string()))?;
        std::fs::write(tmp.join("adapter_config.json"), json).map_err(|source| Error::Write {
            path: tmp.join("adapter_config.json"),
            source,
        })?;
        crate::weights::save_safetensors(&tensors, &tmp.join("adapter_model.safetensors"))?;
        ferrotune_home::atomic::replace_dir(&tmp, dir).map_err(|source| Error::Io {
            path: dir.into(),
            source,
        })
    };
    let result = write();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// A PEFT LoRA adapter as read from its folder: its settings and tensors (on the CPU, as stored).
pub struct PeftAdapter {
    /// The folder holding `adapter_config.json` (a run folder's `adapter/` when given the run folder).
    pub dir: std::path::PathBuf,
    pub config: PeftConfig,
    tensors: HashMap<String, Tensor>,
}

/// One adapted module's update: `a` `(r, in)`, `b` `(out, r)`, DoRA's `magnitude` `(out)`.
pub struct ModuleUpdate<'a> {
    pub a: &'a Tensor,
    pub b: &'a Tensor,
    pub magnitude: Option<&'a Tensor>,
}

impl PeftAdapter {
    /// Reads the adapter in `dir` (or in `dir/adapter`, a run folder's).
    pub fn open(dir: &Path) -> Result<PeftAdapter> {
        let nested = dir.join("adapter");
        let dir = if !dir.join("adapter_config.json").is_file()
            && nested.join("adapter_config.json").is_file()
        {
            nested.as_path()
        } else {
            dir
        };
        let config_path = dir.join("adapter_config.json");
        if !config_path.is_file() {
            return Err(Error::InvalidAdapter(format!(
                "`{}` has no `adapter_config.json`\nhelp: give the folder a training run saved its adapter in (PEFT format)",
                dir.display()
            )));
        }
        let config: PeftConfig = read_json(&config_path)?;
        if config.peft_type != "LORA" {
            return Err(Error::InvalidAdapter(format!(
                "adapter type `{}` is not supported; only LORA adapters are",
                config.peft_type
            )));
        }
        let weights_path = dir.join("adapter_model.safetensors");
        let tensors = candle_core::safetensors::load(&weights_path, &candle_core::Device::Cpu)
            .map_err(|e| Error::CorruptWeights {
                path: weights_path.clone(),
                message: e.to_string(),
            })?;
        Ok(PeftAdapter {
            dir: dir.to_path_buf(),
            config,
            tensors,
        })
    }

    /// The settings as a [`LoraSpec`] (target modules left to the tensors present).
    pub fn spec(&self) -> LoraSpec {
        LoraSpec {
            r: self.config.r,
            alpha: self.config.lora_alpha,
            dropout: self.config.lora_dropout as f32,
            use_rslora: self.config.use_rslora,
            use_dora: self.config.use_dora,
            target_modules: Vec::new(),
        }
    }

    /// The update of the module at `path` (e.g. `model.layers.0.self_attn.q_proj`), if the adapter has one.
    pub fn module(&self, path: &str) -> Result<Option<ModuleUpdate<'_>>> {
        let key = |suffix: &str| format!("{PEFT_PREFIX}{path}.{suffix}");
        let (Some(a), Some(b)) = (
            self.tensors.get(&key("lora_A.weight")),
            self.tensors.get(&key("lora_B.weight")),
        ) else {
            return Ok(None);
        };
        let magnitude = self.tensors.get(&key("lora_magnitude_vector"));
        if magnitude.is_none() && self.config.use_dora {
            return Err(Error::InvalidAdapter(format!(
                "DoRA adapter lacks `{}`",
                key("lora_magnitude_vector")
            )));
        }
        Ok(Some(ModuleUpdate { a, b, magnitude }))
    }

    /// Paths of the modules the adapter has an update for, sorted.
    pub fn module_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .tensors
            .keys()
            .filter_map(|k| k.strip_prefix(PEFT_PREFIX)?.strip_suffix(".lora_A.weight"))
            .map(str::to_string)
            .collect();
        paths.sort();
        paths
    }

    /// The adapter's safetensors file (for error messages).
    pub fn weights_path(&self) -> std::path::PathBuf {
        self.dir.join("adapter_model.safetensors")
    }
}

/// Reads a PEFT LoRA adapter from `dir` and attaches it to `model`; returns its spec.
pub fn load_peft(model: &mut Llama, dir: &Path) -> Result<LoraSpec> {
    let adapter = PeftAdapter::open(dir)?;
    let weights_path = adapter.weights_path();
    let spec = adapter.spec();
    let scale = spec.scale();
    let mut attached = 0;
    let device = model.device().clone();
    for (path, _, linear) in model.linears_mut() {
        let Some(update) = adapter.module(&path)? else {
            continue;
        };
        let (a, b) = (update.a, update.b);
        let (out_dim, in_dim) = linear.weight().dims()?;
        if a.dims() != [spec.r, in_dim] || b.dims() != [out_dim, spec.r] {
            return Err(Error::InvalidAdapter(format!(
                "adapter tensors of `{path}` have shapes {:?} and {:?}, expected [{}, {in_dim}] and [{out_dim}, {}]\nhelp: the adapter was trained on a different backbone",
                a.dims(), b.dims(), spec.r, spec.r
            )));
        }
        let magnitude = match update.magnitude {
            Some(m) => Some(Var::from_tensor(
                &m.to_dtype(DType::F32)?.to_device(&device)?,
            )?),
            None => None,
        };
        linear.set_lora(Some(LoraAdapter {
            a: Var::from_tensor(&a.to_dtype(DType::F32)?.to_device(&device)?)?,
            b: Var::from_tensor(&b.to_dtype(DType::F32)?.to_device(&device)?)?,
            magnitude,
            scale,
            dropout: spec.dropout,
            detached: false,
        }));
        attached += 1;
    }
    if attached == 0 {
        return Err(Error::InvalidAdapter(format!(
            "no tensor of `{}` matches this backbone's modules\nhelp: the adapter was trained on a different backbone",
            weights_path.display()
        )));
    }
    Ok(spec)
}
