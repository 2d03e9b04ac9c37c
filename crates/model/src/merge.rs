//! A backbone's weights with a LoRA adapter merged in, one tensor at a time: what an export writes. The
//! backbone's safetensors stay memory-mapped and each tensor is read, merged (`W + s·B·A`, DoRA as PEFT's
//! `merge_and_unload`; [`crate::lora::merge_weight`]) and handed out in f32 on its own, so peak memory is one
//! tensor, not the model.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::adapter::PeftAdapter;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::weights::Weights;

/// The tensors of a backbone folder, with an optional adapter merged into them.
pub struct MergedWeights {
    weights: Weights,
    adapter: Option<PeftAdapter>,
    config: ModelConfig,
}

impl MergedWeights {
    /// Opens the backbone folder `backbone` and the PEFT adapter folder `adapter`, checking that every module
    /// the adapter updates is a weight of the backbone with the adapter's shapes.
    pub fn open(backbone: &Path, adapter: Option<&Path>) -> Result<MergedWeights> {
        let config = ModelConfig::from_dir(backbone)?;
        let weights = Weights::open(backbone)?;
        let adapter = adapter.map(PeftAdapter::open).transpose()?;
        if let Some(adapter) = &adapter {
            let paths = adapter.module_paths();
            if paths.is_empty() {
                return Err(Error::InvalidAdapter(format!(
                    "`{}` holds no LoRA tensors\nhelp: the adapter file is empty or not PEFT's; train the run again",
                    adapter.weights_path().display()
                )));
            }
            for path in paths {
                let name = format!("{path}.weight");
                let shape = weights.shape(&name).map_err(|_| {
                    Error::InvalidAdapter(format!(
                        "the adapter updates `{path}`, which the backbone `{}` does not have\nhelp: the adapter was trained on a different backbone; export it with the backbone of its run",
                        backbone.display()
                    ))
                })?;
                let update = adapter.module(&path)?.expect("listed modules have updates");
                let r = adapter.config.r;
                if update.a.dims() != [r, shape[1]] || update.b.dims() != [shape[0], r] {
                    return Err(Error::InvalidAdapter(format!(
                        "adapter tensors of `{path}` have shapes {:?} and {:?}, but the backbone's weight is {:?}\nhelp: the adapter was trained on a different backbone; export it with the backbone of its run",
                        update.a.dims(),
                        update.b.dims(),
                        shape
                    )));
                }
            }
        }
        Ok(MergedWeights {
            weights,
            adapter,
            config,
        })
    }

    /// The backbone's resolved configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The backbone's weights as stored.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// The adapter, when one is merged.
    pub fn adapter(&self) -> Option<&PeftAdapter> {
        self.adapter.as_ref()
    }

    /// Every tensor name of the backbone, in the order the files store them (reading sequentially).
    pub fn names(&self) -> Vec<String> {
        self.weights.names_in_file_order()
    }

    /// The shape of tensor `name`.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        self.weights.shape(name)
    }

    /// How many weights the adapter changes.
    pub fn adapted_modules(&self) -> usize {
        self.adapter.as_ref().map_or(0, |a| a.module_paths().len())
    }

    /// Tensor `name` in f32 on the CPU, with the adapter's update merged in when it has one.
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        let w = self.weights.load(name, None, DType::F32, &Device::Cpu)?;
        let Some(adapter) = &self.adapter else {
            return Ok(w);
        };
        let Some(update) = name
            .strip_suffix(".weight")
            .map(|path| adapter.module(path))
            .transpose()?
            .flatten()
        else {
            return Ok(w);
        };
        crate::lora::merge_weight(
            &w,
            update.a,
            update.b,
            update.magnitude,
            adapter.spec().scale(),
        )
    }
}
