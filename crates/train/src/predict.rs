//! `ferrotune predict`: a run's model applied to a new file mapped like its training data. The output is the
//! input's columns plus `prediction`, written batch by batch to `FILE.partial` (flushed after each batch, so a
//! long run can be watched) and renamed to the output name when every row is done: an interrupted prediction
//! never leaves a half file under the name asked for.
//!
//! What a prediction is depends on the problem type: the generated answer for causal language modelling and
//! preference tuning (with the run's prediction settings: max new tokens, sampling, stop texts); for
//! classification the class (its name when the labels were names, else its index) with a `probability_<class>`
//! column per class (per label column for multilabel, whose prediction lists the 0/1 labels); for regression
//! the value, or one `prediction_<column>` per target column. Heads run a whole batch per forward pass.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ferrotune_config::ProblemType;
use ferrotune_data::{prediction_prompts, DatasetSettings, PredictionInput};
use ferrotune_home::{Home, RunDir};
use ferrotune_model::{generate, Backbone, Device};

use crate::error::{Error, Result};
use crate::head::Head;
use crate::load::TrainedModel;
use crate::settings::prediction_config;

/// The column a prediction is written to.
pub const PREDICTION_COLUMN: &str = "prediction";

/// What to predict.
pub struct PredictRequest<'a> {
    /// The run (its `cfg.yaml` and adapter).
    pub run: &'a RunDir,
    pub home: &'a Home,
    /// A .csv, .parquet, .json or .jsonl file with the training data's prompt columns.
    pub input: &'a Path,
    /// The CSV to write.
    pub output: &'a Path,
    /// Rows per written batch.
    pub batch_size: usize,
    pub device: &'a Device,
}

/// What a prediction run did.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictSummary {
    pub rows: usize,
    pub output: PathBuf,
    pub seconds: f64,
    /// Generated tokens (text problem types).
    pub tokens: usize,
}

/// Progress: rows done of rows in all.
pub type PredictProgress<'a> = &'a mut dyn FnMut(usize, usize);

/// Predicts every row of the request's input with the run's model.
pub fn predict(request: &PredictRequest, progress: PredictProgress) -> Result<PredictSummary> {
    let started = Instant::now();
    let trained = TrainedModel::of_run(request.run, request.home, request.device)?;
    let cfg = &trained.config;
    let backbone = trained.load(request.home, request.device)?;
    let settings = DatasetSettings::from_experiment(cfg);
    let input = prediction_prompts(&settings, &backbone.tokenizer, request.input)?;
    let partial = partial_path(request.output);
    let head = match cfg.problem_type {
        ProblemType::TextCausalClassificationModeling
        | ProblemType::TextCausalRegressionModeling => {
            let dir = trained.weights_dir();
            if !dir.join(crate::head::LABEL_MAPPING_FILE).is_file() {
                return Err(Error::Setting(format!(
                    "run `{}` has no trained head to predict with\nhelp: train it first (its `adapter/` or `model/` holds the head)",
                    request.run.root().display()
                )));
            }
            Some(Head::load(dir)?)
        }
        ProblemType::TextCausalLanguageModeling | ProblemType::TextDpoModeling => None,
    };
    let mut out = Output::create(
        &partial,
        &input,
        &head.as_ref().map(Head::output_columns).unwrap_or_default(),
    )?;
    let total = input.prompts.len();
    let generation = prediction_config(cfg, &backbone);
    let mut tokens = 0;
    progress(0, total);
    for (k, batch) in input.prompts.chunks(request.batch_size.max(1)).enumerate() {
        match &head {
            Some(head) => {
                let rows: Vec<&[u32]> = batch.iter().map(|p| p.ids.as_slice()).collect();
                let model = backbone.model.for_inference();
                let outputs = head.forward(&model, &rows, Default::default())?;
                for (prompt, values) in batch.iter().zip(head.read(&outputs)?) {
                    tokens += prompt.ids.len();
                    let mut record = vec![head.prediction(&values)];
                    record.extend(head.output_values(&values).iter().map(f64::to_string));
                    out.row(&input, prompt.row, &record)?;
                }
            }
            None => {
                for prompt in batch {
                    let (text, n) = generated(&backbone, &generation, &prompt.ids)?;
                    tokens += n;
                    out.row(&input, prompt.row, &[text])?;
                }
            }
        }
        out.flush()?;
        progress(
            (k * request.batch_size.max(1) + batch.len()).min(total),
            total,
        );
    }
    out.finish()?;
    std::fs::rename(&partial, request.output).map_err(|source| Error::Io {
        path: request.output.to_path_buf(),
        source,
    })?;
    Ok(PredictSummary {
        rows: total,
        output: request.output.to_path_buf(),
        seconds: started.elapsed().as_secs_f64(),
        tokens,
    })
}

/// The answer generated for `prompt` and its token count.
fn generated(
    backbone: &Backbone,
    generation: &ferrotune_model::GenerationConfig,
    prompt: &[u32],
) -> Result<(String, usize)> {
    let out = generate(
        &backbone.model,
        &backbone.tokenizer,
        prompt,
        generation,
        &mut |_| {},
    )?;
    Ok((out.text.trim().to_string(), out.token_ids.len()))
}

/// What a run's head says about one text.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scored {
    /// As the `prediction` column writes it: the class, the 0/1 labels, or the value(s).
    pub prediction: String,
    /// The outputs by the names of their columns (`probability_<class>`, `prediction_<column>`, or the one
    /// value's `prediction`).
    pub outputs: Vec<(String, f64)>,
}

/// Applies `head` on `backbone` (a run's loaded model) to `text`, formatted as the run's training prompts are:
/// the studio's box for typed text.
pub fn score_text(
    backbone: &Backbone,
    cfg: &ferrotune_config::Experiment,
    head: &Head,
    text: &str,
) -> Result<Scored> {
    let settings = DatasetSettings::from_experiment(cfg);
    let ids = ferrotune_data::predict::prompt_of_text(&settings, &backbone.tokenizer, text)?;
    let model = backbone.model.for_inference();
    let outputs = head.forward(&model, &[ids.as_slice()], Default::default())?;
    let values = head.read(&outputs)?.into_iter().next().unwrap_or_default();
    let names = match head.output_columns() {
        names if names.is_empty() => vec![PREDICTION_COLUMN.to_string()],
        names => names,
    };
    Ok(Scored {
        prediction: head.prediction(&values),
        outputs: names.into_iter().zip(values.iter().copied()).collect(),
    })
}

/// Where the output is written until it is complete.
pub fn partial_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    output.with_file_name(name)
}

/// The CSV being written: the input's columns plus the prediction.
struct Output {
    writer: csv::Writer<std::fs::File>,
    path: PathBuf,
}

impl Output {
    fn create(path: &Path, input: &PredictionInput, extra: &[String]) -> Result<Output> {
        let added = std::iter::once(PREDICTION_COLUMN).chain(extra.iter().map(String::as_str));
        for name in added {
            if input.table.columns.iter().any(|c| c == name) {
                return Err(Error::Setting(format!(
                    "`{}` already has a `{name}` column\nhelp: rename or drop that column, so the predictions do not overwrite it",
                    input.table.path.display()
                )));
            }
        }
        let file = std::fs::File::create(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut out = Output {
            writer: csv::Writer::from_writer(file),
            path: path.to_path_buf(),
        };
        let mut header = input.table.columns.clone();
        header.push(PREDICTION_COLUMN.to_string());
        header.extend(extra.iter().cloned());
        out.write(&header)?;
        Ok(out)
    }

    fn row(&mut self, input: &PredictionInput, row: usize, prediction: &[String]) -> Result<()> {
        let t = &input.table;
        let mut record: Vec<String> = (0..t.columns.len())
            .map(|c| t.text(row, c).to_string())
            .collect();
        record.extend(prediction.iter().cloned());
        self.write(&record)
    }

    fn write(&mut self, record: &[String]) -> Result<()> {
        self.writer.write_record(record).map_err(|e| self.error(e))
    }

    fn flush(&mut self) -> Result<()> {
        let path = self.path.clone();
        self.writer
            .flush()
            .map_err(|source| Error::Io { path, source })
    }

    fn finish(mut self) -> Result<()> {
        self.flush()?;
        let path = self.path.clone();
        let file = self.writer.into_inner().map_err(|e| Error::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        file.sync_all().map_err(|source| Error::Io { path, source })
    }

    fn error(&self, e: csv::Error) -> Error {
        let source = match e.into_kind() {
            csv::ErrorKind::Io(io) => io,
            other => std::io::Error::other(format!("{other:?}")),
        };
        Error::Io {
            path: self.path.clone(),
            source,
        }
    }
}
