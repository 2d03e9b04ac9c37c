//! The settings reference, `docs/settings.md`, generated from the schema. A test fails when the committed file is
//! stale; `FERROTUNE_BLESS=1 cargo test -p ferrotune-config` rewrites it.

use crate::meta::{groups, Setting};
use crate::schema::{Experiment, ProblemType};
use crate::validate::{CHAT_TEMPLATE_TOKENS, MIN_CONTENT_TOKENS};
use crate::yaml::render_value;

/// The Markdown of `docs/settings.md`: an introduction, then one table per group.
pub fn settings_markdown() -> String {
    let mut out = intro();
    for (group, settings) in Experiment::layout() {
        let (title, help) = if group.is_empty() {
            (
                "Top level".to_string(),
                "Settings at the top of the file, outside any group.",
            )
        } else {
            let help = groups()
                .iter()
                .find(|g| g.key == group)
                .map_or("", |g| g.help);
            (format!("`{group}`"), help)
        };
        out.push_str(&format!("\n## {title}\n\n{help}\n\n"));
        out.push_str("| key | type | default | range / choices | applies when | grid | help |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        for s in settings {
            out.push_str(&row(s));
        }
    }
    out.push_str(&problem_types());
    out.push_str(&h2o_table());
    out
}

/// How H2O LLM Studio's keys are read (from `crate::h2o`'s lists).
fn h2o_table() -> String {
    let mut out = String::from(
        "\n## H2O LLM Studio files\n\nAn H2O LLM Studio 1.14 `cfg.yaml` is read as it is (`config validate`, `train`, \
         `experiment start`, the studio's YAML import; `config import-h2o FILE` writes the Ferrotune file). Its keys \
         are Ferrotune settings of the same name, read with H2O's conventions (`None` for an unset column, \
         `lora_target_modules` as a comma-separated string, `gpus: ['']` for none, floats for integers), except:\n\n\
         | H2O key | read as | why |\n|---|---|---|\n",
    );
    for (key, why) in crate::h2o::H2O_IGNORED {
        out.push_str(&format!("| `{key}` | ignored, with a warning | {why} |\n"));
    }
    for (key, accepted, why) in crate::h2o::H2O_DEFAULT_ONLY {
        let accepted = if accepted.is_empty() { "''" } else { accepted };
        out.push_str(&format!(
            "| `{key}` | accepted at `{accepted}` (H2O's default), refused otherwise | {why} |\n"
        ));
    }
    out.push_str(
        "| `logging.logger` | `None`, `TensorBoard`, `MLflow`; `Neptune` / `W&B` refused | they need internet access |\n\
         | `prediction.metric: GPT` | the LLM judge, on any OpenAI-compatible endpoint (`OPENAI_API_BASE`, `OPENAI_API_KEY`) | |\n",
    );
    out
}

/// The per-type table: each problem type's losses, metrics and the defaults it changes.
fn problem_types() -> String {
    let mut out = String::from(
        "\n## Problem types\n\n`problem_type` decides the losses and metrics a run may use and changes some defaults \
         (settings still at one type's default take the new type's when the type changes).\n\n\
         | problem_type | losses (first: default) | metrics | other defaults |\n|---|---|---|---|\n",
    );
    for &pt in ProblemType::ALL {
        let quoted = |names: Vec<&str>| {
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let losses = quoted(pt.losses().iter().map(|l| l.as_str()).collect());
        let metrics = quoted(pt.metrics().iter().map(|m| m.as_str()).collect());
        let defaults: Vec<String> = pt
            .default_overrides()
            .iter()
            .filter(|(k, _)| *k != "training.loss_function")
            .map(|(k, v)| format!("`{k}: {}`", render_value(v)))
            .collect();
        out.push_str(&format!(
            "| `{pt}` | {losses} | {metrics} | {} |\n",
            defaults.join(", ")
        ));
    }
    out
}

fn row(s: &Setting) -> String {
    let limits = match (s.choices(), s.range) {
        (Some(choices), _) => choices
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", "),
        (None, Some(range)) => format!("`{range}`"),
        (None, None) => String::new(),
    };
    let when: Vec<String> = s.applies_when.iter().map(ToString::to_string).collect();
    let cells = [
        format!("`{}`", s.key),
        s.kind.name(),
        format!("`{}`", render_value(&s.default)),
        limits,
        when.join(" and "),
        if s.grid {
            "yes".to_string()
        } else {
            String::new()
        },
        s.help.to_string(),
    ];
    let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
    format!("| {} |\n", cells.join(" | "))
}

fn intro() -> String {
    format!(
        "\
# Experiment settings

<!-- Generated from crates/config/src/schema/ by `FERROTUNE_BLESS=1 cargo test -p ferrotune-config`; do not edit. -->

An experiment is one YAML file: top-level settings, then one section per group (`training:`, …). Each setting's
key is `section.field` (`training.learning_rate`); `ferrotune config init` writes every setting with its default
and a comment.

- **Layers.** Defaults, then the YAML file, then command-line overrides `--section.field value` (or
  `--section.field=value`); a later layer wins. On the command line a list is `a,b` or `[a, b]`, and a string in
  double quotes (`'\"\\n\\n\"'`) is read with YAML escapes.
- **Unknown keys** are errors, in the file and on the command line, with the closest key suggested.
- **Applies when.** The setting has an effect only when these hold (the GUI hides it otherwise); a non-default
  value that has no effect draws a warning.
- **Grid.** With `grid_search: true`, a grid-enabled setting may list several values (`learning_rate: [0.0001,
  0.00005]`) and one experiment runs per combination. Outside a grid search a list there is an error.
- **Paths** are relative to the folder ferrotune runs in; a leading `~/` is the home folder. In
  `output_directory`, `{{experiment_name}}` is replaced by the experiment's name.
- **Drawn at the start of a run.** An empty `experiment_name` becomes an adjective-animal name and a `seed` of -1
  a random seed; both are recorded in the run's saved settings.
- **Checks** (`ferrotune config validate`). Beyond types, ranges and choices: `int8`/`int4` backbones need LoRA;
  `num_beams` > 1 does not combine with `do_sample`; the `GPT` metric needs a judge model name (and an http(s) endpoint
  when one is given); a custom validation
  strategy needs `validation_dataframe`; `train_dataframe` must be set; grid lists need `grid_search`. The
  `max_length` rule warns when `tokenizer.max_length` is below the bytes of the marker texts in use (a token
  covers at least one byte), plus one token per end-of-sequence token added, plus {MIN_CONTENT_TOKENS} tokens of
  content; with `use_chat_template` the template's markers count as {CHAT_TEMPLATE_TOKENS} tokens. Then the world:
  the data files exist with a supported extension (.csv, .parquet, .json, .jsonl), the backbone exists, the
  output folder is writable, and its disk has 1 GiB free (a warning below) and 100 MiB (an error below). Whether
  the named columns exist is checked when the data is loaded.
"
    )
}
