//! Pre-flight validation, stage one: the settings alone, with no files or system calls, every problem at once.
//! Stage two, [`crate::check_environment`], looks at the world.

use crate::error::{Issue, Report};
use crate::meta::{setting, settings, Setting};
use crate::schema::{BackboneDtype, Experiment, Logger, Metric, ValidationStrategy};
use crate::yaml::render_value;

/// Tokens that must stay free for prompt and answer text in the `max_length` rule ([`min_max_length`]).
pub const MIN_CONTENT_TOKENS: u32 = 32;

/// Tokens assumed for a chat template's own markers in the `max_length` rule (the template is not read here).
pub const CHAT_TEMPLATE_TOKENS: u32 = 32;

/// Grid searches with more experiments than this draw a warning.
pub const LARGE_GRID: usize = 100;

/// Checks every setting and the rules between them; errors block a run, warnings do not.
pub fn validate(cfg: &Experiment) -> Report {
    let mut report = Report::default();
    ranges(cfg, &mut report);
    grid(cfg, &mut report);
    without_effect(cfg, &mut report);
    data(cfg, &mut report);
    run(cfg, &mut report);
    training(cfg, &mut report);
    prediction(cfg, &mut report);
    logging(cfg, &mut report);
    max_length(cfg, &mut report);
    crate::problem::check(cfg, &mut report);
    for ignored in &cfg.ignored {
        report.warning(ignored.clone());
    }
    report
}

/// The values of a setting: its grid values, or its one value.
fn values(cfg: &Experiment, s: &Setting) -> Vec<serde_yaml_ng::Value> {
    match cfg.grid.get(s.key) {
        Some(values) => values.clone(),
        None => cfg.get(s.key).into_iter().collect(),
    }
}

fn ranges(cfg: &Experiment, report: &mut Report) {
    for s in settings() {
        for x in values(cfg, s).iter().filter_map(|v| v.as_f64()) {
            if !x.is_finite() {
                report.error(Issue::new(
                    s.key,
                    format!("must be a finite number, found `{x}`"),
                ));
            } else if let Some(range) = s.range.filter(|r| !r.contains(x)) {
                let how = if range.min.is_some() && range.max.is_some() {
                    "in "
                } else {
                    ""
                };
                report.error(Issue::new(
                    s.key,
                    format!("must be {how}{range}, found `{x}`"),
                ));
            }
        }
    }
}

fn grid(cfg: &Experiment, report: &mut Report) {
    if !cfg.grid_search {
        for key in cfg.grid.keys() {
            report.error(Issue::new(*key, "lists several values, but `grid_search` is off").with_help(
                "set `grid_search: true` to run one experiment per combination of values, or give a single value",
            ));
        }
        return;
    }
    for (key, values) in &cfg.grid {
        if !setting(key).is_some_and(|s| s.grid) {
            report.error(Issue::new(
                *key,
                "is not grid-enabled, so it cannot list several values",
            ));
        } else if values.is_empty() {
            report.error(Issue::new(*key, "has an empty list of grid values"));
        }
    }
    let combinations: usize = cfg.grid.values().map(|v| v.len().max(1)).product();
    if cfg.grid.is_empty() {
        report.warning(
            Issue::new(
                "grid_search",
                "is on, but no setting lists several values, so one experiment runs",
            )
            .with_help(
                "list values for grid-enabled settings, e.g. `learning_rate: [0.0001, 0.00005]`",
            ),
        );
    } else if combinations > LARGE_GRID {
        report.warning(Issue::new(
            "grid_search",
            format!("makes {combinations} experiments"),
        ));
    }
}

/// A non-default value for a setting that does not apply (e.g. `temperature` without `do_sample`).
fn without_effect(cfg: &Experiment, report: &mut Report) {
    for s in settings() {
        if cfg.applies(s.key) {
            continue;
        }
        let current = match cfg.grid.get(s.key) {
            Some(values) => serde_yaml_ng::Value::Sequence(values.clone()),
            None => cfg.get(s.key).unwrap_or_default(),
        };
        if current == cfg.problem_type.default_of(s) {
            continue;
        }
        let failing: Vec<String> = s
            .applies_when
            .iter()
            .filter(|c| !cfg.get(c.key).is_some_and(|v| c.holds(&v)))
            .map(ToString::to_string)
            .collect();
        report.warning(
            Issue::new(
                s.key,
                format!(
                    "is `{}` but has no effect unless {}",
                    render_value(&current),
                    failing.join(" and ")
                ),
            )
            .with_help("remove it, or change the settings it depends on"),
        );
    }
}

fn data(cfg: &Experiment, report: &mut Report) {
    let d = &cfg.dataset;
    if d.train_dataframe.trim().is_empty() {
        report.error(
            Issue::new("dataset.train_dataframe", "is empty")
                .with_help("set it to the training data: a .csv, .parquet, .json or .jsonl file"),
        );
    }
    if d.validation_strategy == ValidationStrategy::Custom
        && d.validation_dataframe.trim().is_empty()
    {
        report.error(
            Issue::new(
                "dataset.validation_dataframe",
                "is empty, but `dataset.validation_strategy` is `custom`",
            )
            .with_help("set it to the validation data, or use `validation_strategy: automatic`"),
        );
    }
    if d.prompt_column.iter().all(|c| c.trim().is_empty()) {
        report.error(
            Issue::new("dataset.prompt_column", "names no column")
                .with_help("e.g. `[instruction, input]`"),
        );
    }
    if d.answer_column_name().is_none() {
        report.error(
            Issue::new("dataset.answer_column", "names no column").with_help("e.g. `output`"),
        );
    }
    if d.data_sample < 1.0 && d.data_sample_choice.is_empty() {
        report.warning(Issue::new(
            "dataset.data_sample_choice",
            "is empty, so `dataset.data_sample` shrinks nothing",
        ));
    }
}

fn run(cfg: &Experiment, report: &mut Report) {
    let name = &cfg.experiment_name;
    if name == "."
        || name == ".."
        || name.contains(['/', '\\'])
        || name.chars().any(char::is_control)
    {
        report.error(
            Issue::new(
                "experiment_name",
                format!("`{name}` cannot be a folder name"),
            )
            .with_help("use letters, digits, `-` and `_`"),
        );
    }
    if cfg.output_directory.trim().is_empty() {
        report.error(
            Issue::new("output_directory", "is empty").with_help("e.g. `output/{experiment_name}`"),
        );
    }
    let device = cfg.environment.device.as_str();
    let ordinal_ok = |rest: &str| {
        rest.is_empty()
            || rest
                .strip_prefix(':')
                .is_some_and(|n| n.parse::<u32>().is_ok())
    };
    let device_ok = device == "cpu"
        || device.strip_prefix("cuda").is_some_and(ordinal_ok)
        || device.strip_prefix("metal").is_some_and(ordinal_ok);
    if !device_ok {
        report.error(
            Issue::new(
                "environment.device",
                format!("is `{device}`, which is not a device"),
            )
            .with_help("use `cpu`, `cuda` or `cuda:N` (or `metal`, `metal:N`)"),
        );
    }
}

fn training(cfg: &Experiment, report: &mut Report) {
    if !cfg.architecture.pretrained && cfg.training.lora {
        report.error(
            Issue::new(
                "architecture.pretrained",
                "is false, but LoRA adapters on random weights would need those weights rebuilt wherever the adapter is used",
            )
            .with_help("train every weight from scratch with `training.lora: false`, or keep `architecture.pretrained: true`"),
        );
    }
    let dtype = cfg.architecture.backbone_dtype;
    if matches!(dtype, BackboneDtype::Int8 | BackboneDtype::Int4) && !cfg.training.lora {
        report.error(
            Issue::new(
                "architecture.backbone_dtype",
                format!("is `{dtype}`, which needs LoRA: a quantized backbone stays frozen"),
            )
            .with_help("set `training.lora: true`, or use `float32`, `bfloat16` or `float16`"),
        );
    }
    let t = &cfg.training;
    if t.epochs > 0 && t.warmup_epochs > f64::from(t.epochs) {
        report.warning(Issue::new(
            "training.warmup_epochs",
            format!(
                "is {}, longer than the {} training epochs",
                t.warmup_epochs, t.epochs
            ),
        ));
    }
}

fn prediction(cfg: &Experiment, report: &mut Report) {
    let p = &cfg.prediction;
    if p.metric == Metric::Gpt && p.metric_gpt_model.trim().is_empty() {
        report.error(
            Issue::new(
                "prediction.metric_gpt_model",
                "is empty, but `prediction.metric` is `GPT`",
            )
            .with_help(
                "name the judge model the endpoint serves, e.g. one listed by `GET /v1/models`",
            ),
        );
    }
    let base = p.metric_gpt_api_base.trim();
    if p.metric == Metric::Gpt
        && !base.is_empty()
        && !base.starts_with("http://")
        && !base.starts_with("https://")
    {
        report.error(
            Issue::new("prediction.metric_gpt_api_base", format!("is `{base}`, not an http(s) address"))
                .with_help("e.g. `http://127.0.0.1:10101/v1` (`ferrotune serve`) or `https://api.openai.com/v1`"),
        );
    }
    if p.num_beams > 1 && p.do_sample {
        report.error(
            Issue::new(
                "prediction.num_beams",
                format!("is {}, but beam search cannot sample", p.num_beams),
            )
            .with_help("set `num_beams: 1` to sample, or `do_sample: false` for beam search"),
        );
    }
    if p.do_sample && p.temperature == 0.0 {
        report.warning(
            Issue::new(
                "prediction.temperature",
                "is 0, so sampling picks the most likely token every time",
            )
            .with_help("set a temperature above 0 (e.g. 0.7), or `do_sample: false`"),
        );
    }
    if p.min_length_inference > p.max_length_inference {
        report.error(Issue::new(
            "prediction.min_length_inference",
            format!(
                "is {}, more than `max_length_inference` ({})",
                p.min_length_inference, p.max_length_inference
            ),
        ));
    }
}

fn logging(cfg: &Experiment, report: &mut Report) {
    let l = &cfg.logging;
    if l.logger != Logger::MLflow {
        return;
    }
    match l.mlflow_uri() {
        None => report.error(
            Issue::new("logging.mlflow_tracking_uri", "is empty, and `MLFLOW_TRACKING_URI` is not set")
                .with_help("e.g. `http://127.0.0.1:5000` (start a server with `mlflow server --port 5000`)"),
        ),
        Some(uri) if !(uri.starts_with("http://") || uri.starts_with("https://")) => report.error(
            Issue::new("logging.mlflow_tracking_uri", format!("is `{uri}`, not an http(s) address"))
                .with_help(
                    "Ferrotune talks to a tracking server over MLflow's REST API; for a local folder start \
                     `mlflow server --backend-store-uri FOLDER` and give its address",
                ),
        ),
        Some(_) => {}
    }
    if l.mlflow_experiment_name.trim().is_empty() {
        report.error(
            Issue::new("logging.mlflow_experiment_name", "is empty").with_help("e.g. `Ferrotune`"),
        );
    }
}

/// The smallest sensible `tokenizer.max_length`: room for the marker texts and [`MIN_CONTENT_TOKENS`] of content.
///
/// Tokens are estimated from bytes: a token of a byte-level tokenizer covers at least one byte, so a marker of n
/// bytes takes at most n tokens. The bound adds the bytes of the markers in use (`text_system_start` when there is
/// a system column, `text_prompt_start`, `text_answer_separator`), one token per end-of-sequence token added, and
/// [`MIN_CONTENT_TOKENS`]. With `use_chat_template` the template's markers count as [`CHAT_TEMPLATE_TOKENS`].
pub fn min_max_length(cfg: &Experiment) -> u32 {
    let d = &cfg.dataset;
    let markers = if d.use_chat_template {
        CHAT_TEMPLATE_TOKENS as usize
    } else {
        let system = d.system_column_name().is_some();
        let texts = [
            (system, &d.text_system_start),
            (true, &d.text_prompt_start),
            (true, &d.text_answer_separator),
        ];
        let eos = [
            system && d.add_eos_token_to_system,
            d.add_eos_token_to_prompt,
            d.add_eos_token_to_answer,
        ];
        texts
            .iter()
            .filter(|(used, _)| *used)
            .map(|(_, t)| t.len())
            .sum::<usize>()
            + eos.iter().filter(|e| **e).count()
    };
    u32::try_from(markers)
        .unwrap_or(u32::MAX)
        .saturating_add(MIN_CONTENT_TOKENS)
}

fn max_length(cfg: &Experiment, report: &mut Report) {
    let smallest = cfg
        .grid
        .get("tokenizer.max_length")
        .and_then(|vs| vs.iter().filter_map(|v| v.as_u64()).min())
        .map_or(cfg.tokenizer.max_length, |m| {
            u32::try_from(m).unwrap_or(u32::MAX)
        });
    let bound = min_max_length(cfg);
    if smallest < bound {
        report.warning(
            Issue::new(
                "tokenizer.max_length",
                format!(
                    "is {smallest} tokens, which leaves fewer than {MIN_CONTENT_TOKENS} for prompt and answer once \
                     the marker texts and end-of-sequence tokens are in"
                ),
            )
            .with_help(format!("raise it to at least {bound}, or shorten the `dataset.text_*` markers")),
        );
    }
}
