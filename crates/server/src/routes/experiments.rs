//! `/experiments`, `/experiments/new`, `/compare` and their API: the settings schema, the form's validation
//! (problems per setting, warnings, the runs a grid makes), queueing (plus the runner), the list, and compare.
//! One experiment's own routes are in [`super::runs`].

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use ferrotune_config::{groups, settings, Experiment, Issue, Kind, ProblemType, Value};
use ferrotune_store::{ExperimentInfo, StartOptions, Store};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, PageError};
use crate::extract::{AppJson, AppQuery};
use crate::security::Csrf;
use crate::state::AppState;
use crate::views;

pub fn api() -> Router<AppState> {
    Router::new()
        .route("/schema", get(schema_show))
        .route(
            "/experiments",
            get(experiments_index).post(experiments_create),
        )
        .route("/experiments/validate", post(experiments_validate))
        .route("/experiments/form-values", post(form_values_from_yaml))
        .route("/compare", get(compare_show))
}

pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/experiments", get(experiments_page))
        .route("/experiments/new", get(experiment_new_page))
        .route("/compare", get(compare_page))
        .merge(super::runs::pages())
}

/// A setting's value as the form shows it: strings as typed (quoted when they hold control characters), lists
/// as `a,b`, numbers and booleans as YAML writes them.
pub fn form_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.chars().any(|c| c.is_control()) || s.starts_with('"') => {
            serde_json::to_string(s).unwrap_or_default()
        }
        Value::String(s) => s.clone(),
        Value::Sequence(items) => items.iter().map(form_text).collect::<Vec<_>>().join(","),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Every setting's form text for `cfg` (a grid's setting shows its list).
pub fn form_values(cfg: &Experiment) -> BTreeMap<String, String> {
    let grid = cfg.grid.clone();
    settings()
        .iter()
        .filter_map(|s| {
            let text = match grid.get(s.key) {
                Some(values) if !values.is_empty() => format!(
                    "[{}]",
                    values.iter().map(form_text).collect::<Vec<_>>().join(", ")
                ),
                _ => form_text(&cfg.get(s.key)?),
            };
            Some((s.key.to_string(), text))
        })
        .collect()
}

async fn schema_show() -> Json<serde_json::Value> {
    let defaults = form_values(&Experiment::default());
    Json(serde_json::json!({
        "groups": groups(),
        "settings": settings(),
        "defaults": defaults,
    }))
}

/// What the form submits: overrides of the defaults, and where the data comes from.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExperimentForm {
    /// Setting key → its text, for the fields that differ from the defaults.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// A registered dataset (its canonical tables replace the dataset paths and columns).
    #[serde(default)]
    pub dataset: Option<String>,
    /// Queue despite warnings.
    #[serde(default)]
    pub start_anyway: bool,
}

/// The form's verdict.
#[derive(Debug, Serialize)]
pub struct Verdict {
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
    /// The experiments it would queue (several for a grid).
    pub runs: Vec<String>,
}

/// Reads the form into settings (values checked one by one, so each problem keeps its key) and reviews them
/// like `experiment start` does.
fn review(
    state: &AppState,
    store: &Store,
    form: &ExperimentForm,
) -> Result<(ferrotune_store::Review, Vec<Issue>), ApiError> {
    // The problem type first: it sets the defaults the other values are read against (as in a YAML file).
    let mut cfg = Experiment::default();
    let mut errors = Vec::new();
    if let Some(text) = form.values.get("problem_type") {
        if let Err(ferrotune_config::Error::Settings { issues, .. }) =
            ferrotune_config::apply_overrides(&mut cfg, &[("problem_type".into(), text.clone())])
        {
            errors.extend(issues);
        }
    }
    for (key, text) in form.values.iter().filter(|(k, _)| *k != "problem_type") {
        if let Err(ferrotune_config::Error::Settings { issues, .. }) =
            ferrotune_config::apply_overrides(&mut cfg, &[(key.clone(), text.clone())])
        {
            errors.extend(issues);
        }
    }
    let max_epochs = state.settings().max_epochs;
    let epochs = cfg
        .grid
        .get("training.epochs")
        .and_then(|v| v.iter().filter_map(|x| x.as_u64()).max())
        .unwrap_or(cfg.training.epochs as u64);
    if epochs > max_epochs {
        errors.push(Issue::new(
            "training.epochs",
            format!("is {epochs}, above this studio's limit of {max_epochs} (Settings page)"),
        ));
    }
    let options = StartOptions {
        config: cfg.into(),
        overrides: Vec::new(),
        dataset: form.dataset.clone().filter(|d| !d.is_empty()),
        name: None,
    };
    let review =
        store.review_experiments(&options, &ferrotune_train::settings::checks_before_training)?;
    Ok((review, errors))
}

fn verdict(review: &ferrotune_store::Review, mut errors: Vec<Issue>) -> Verdict {
    for e in &review.errors {
        if !errors.contains(e) {
            errors.push(e.clone());
        }
    }
    Verdict {
        errors,
        warnings: review.warnings.clone(),
        runs: review
            .plan
            .experiments
            .iter()
            .map(|p| p.name.clone())
            .collect(),
    }
}

async fn experiments_validate(
    State(state): State<AppState>,
    AppJson(form): AppJson<ExperimentForm>,
) -> Result<Json<Verdict>, ApiError> {
    let st = state.clone();
    let v = state
        .with_store(move |s| {
            let (review, errors) = review(&st, s, &form)?;
            Ok(verdict(&review, errors))
        })
        .await?;
    Ok(Json(v))
}

async fn experiments_create(
    State(state): State<AppState>,
    AppJson(form): AppJson<ExperimentForm>,
) -> Result<(StatusCode, Json<Vec<ExperimentInfo>>), ApiError> {
    let st = state.clone();
    let queued = state
        .with_store(move |s| {
            let (review, errors) = review(&st, s, &form)?;
            let v = verdict(&review, errors);
            if !v.errors.is_empty() {
                return Err(ApiError::invalid(v.errors, v.warnings));
            }
            if !v.warnings.is_empty() && !form.start_anyway {
                let mut e = ApiError::invalid(Vec::new(), v.warnings);
                e.status = StatusCode::CONFLICT;
                e.message = "there are warnings; send `start_anyway: true` to queue anyway".into();
                return Err(e);
            }
            if st.exe.is_none() {
                return Err(no_runner());
            }
            let queued = s.queue_experiments(&review.plan)?;
            start_runner(&st)?;
            Ok(queued)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(queued)))
}

/// Starts the runner if none runs (the same one `experiment start` starts).
pub fn start_runner(state: &AppState) -> Result<(), ApiError> {
    let exe = state.exe.as_ref().ok_or_else(no_runner)?;
    ferrotune_store::ensure_runner(&state.home, exe)?;
    Ok(())
}

pub(crate) fn no_runner() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "this server was started without the ferrotune binary, so it cannot run experiments; start it with `ferrotune serve`",
    )
}

/// `POST /api/experiments/form-values`: an experiment file read into form values.
#[derive(Debug, Deserialize)]
pub struct YamlText {
    pub yaml: String,
}

/// `POST /api/experiments/form-values`: the form's values of an experiment file (Ferrotune's or H2O LLM
/// Studio's), and the H2O keys it had that were ignored, with why.
#[derive(Debug, Serialize)]
struct FormValues {
    values: BTreeMap<String, String>,
    ignored: Vec<ferrotune_config::Issue>,
}

async fn form_values_from_yaml(
    AppJson(req): AppJson<YamlText>,
) -> Result<Json<FormValues>, ApiError> {
    let cfg = Experiment::from_yaml_str(&req.yaml, "the uploaded experiment file")?;
    Ok(Json(FormValues {
        values: form_values(&cfg),
        ignored: cfg.ignored.clone(),
    }))
}

/// One row of the experiments table: the registry's row and the backbone it trains.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentRow {
    #[serde(flatten)]
    pub info: ExperimentInfo,
    /// `llm_backbone` of its config.
    pub backbone: String,
    /// What the table shows for it: the registered backbone's name, else the folder's or file's name
    /// ("" for the demo backbone).
    pub backbone_label: String,
    /// Which way its metric improves, in words ("lower is better").
    pub metric_direction: &'static str,
}

/// The rows of the experiments table, backbones named as they were registered.
pub fn rows(store: &mut Store) -> Result<Vec<ExperimentRow>, ApiError> {
    let registered = store.backbones()?;
    Ok(store
        .experiments()?
        .into_iter()
        .map(|info| {
            let backbone = Experiment::from_yaml_str(&info.config, &info.name)
                .map(|c| c.llm_backbone)
                .unwrap_or_default();
            let backbone_label = backbone_label(&backbone, &registered);
            let metric_direction =
                crate::views::better_words(info.metric_name.as_deref().unwrap_or(""));
            ExperimentRow {
                metric_direction,
                info,
                backbone,
                backbone_label,
            }
        })
        .collect())
}

/// The registered backbone's folder that `path` names (what the form's picker shows selected), or "".
fn backbone_choice(path: &str, registered: &[ferrotune_store::BackboneEntry]) -> String {
    let name = backbone_label(path, registered);
    registered
        .iter()
        .find(|b| b.name == name && !path.is_empty())
        .map(|b| b.path.display().to_string())
        .unwrap_or_default()
}

/// The registered name of the backbone at `path`, else the last part of the path.
fn backbone_label(path: &str, registered: &[ferrotune_store::BackboneEntry]) -> String {
    let wanted = std::path::Path::new(path.trim_end_matches('/'));
    let same = |p: &std::path::Path| {
        p == wanted || matches!((p.canonicalize(), wanted.canonicalize()), (Ok(a), Ok(b)) if a == b)
    };
    registered
        .iter()
        .find(|b| same(&b.path) || b.gguf.as_deref().is_some_and(same))
        .map(|b| b.name.clone())
        .unwrap_or_else(|| {
            wanted
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
}

async fn experiments_index(
    State(state): State<AppState>,
) -> Result<Json<Vec<ExperimentRow>>, ApiError> {
    Ok(Json(state.with_store(rows).await?))
}

/// One row of the form: a setting with its current text.
#[derive(Debug, Serialize)]
struct Field {
    key: &'static str,
    label: String,
    /// Shown open; the others are folded per group.
    basic: bool,
    help: &'static str,
    kind: &'static str,
    choices: Vec<&'static str>,
    range: String,
    grid: bool,
    default: String,
    value: String,
    when: String,
}

/// The choices the form offers for `s`: the problem type's own losses and metrics, every choice elsewhere.
fn choices_for(s: &ferrotune_config::Setting, problem_type: ProblemType) -> Vec<&'static str> {
    match s.key {
        "training.loss_function" => problem_type.losses().iter().map(|l| l.as_str()).collect(),
        "prediction.metric" => problem_type.metrics().iter().map(|m| m.as_str()).collect(),
        _ => match &s.kind {
            Kind::List { item } => item.choices().unwrap_or(&[]).to_vec(),
            k => k.choices().unwrap_or(&[]).to_vec(),
        },
    }
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Bool => "bool",
        Kind::Int => "int",
        Kind::Float => "float",
        Kind::Text => "text",
        Kind::Path => "path",
        Kind::Choice { .. } => "choice",
        Kind::List { .. } => "list",
    }
}

async fn experiment_new_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    AppQuery(q): AppQuery<HashMap<String, String>>,
) -> Result<Html<String>, PageError> {
    let from = q.get("from").cloned();
    let (datasets, backbones, base) = state
        .with_store(move |s| {
            let base = match &from {
                Some(name) => {
                    let info = s.experiment(name)?;
                    let cfg = Experiment::from_yaml_str(&info.config, name)?;
                    Some((cfg, info.dataset))
                }
                None => None,
            };
            Ok((s.datasets()?, s.backbones()?, base))
        })
        .await?;
    // The problem type chosen on the page (it reloads with the type's defaults), else the copied run's.
    let problem_type = match q.get("problem_type") {
        Some(name) => ProblemType::from_name(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown problem type `{name}`; the choices are {}",
                ProblemType::NAMES.join(", ")
            ))
        })?,
        None => base
            .as_ref()
            .map_or(ProblemType::TextCausalLanguageModeling, |(cfg, _)| {
                cfg.problem_type
            }),
    };
    let defaults = form_values(&Experiment::for_problem(problem_type));
    let mut values = defaults.clone();
    values.extend(
        state
            .settings()
            .experiment_defaults
            .into_iter()
            .filter(|(k, _)| k != "problem_type"),
    );
    let mut dataset = q.get("dataset").cloned().unwrap_or_default();
    if let Some((base, base_dataset)) = &base {
        values.extend(form_values(base));
        // A copy gets its own name.
        values.insert("experiment_name".into(), String::new());
        values.insert(
            "output_directory".into(),
            defaults["output_directory"].clone(),
        );
        // A copy of a run on a registered dataset stays linked to it; the dataset's own tables stay inside it.
        if let Some(d) = base_dataset
            .as_ref()
            .filter(|d| datasets.iter().any(|r| &r.name == *d))
        {
            dataset = d.clone();
            for key in Store::SET_BY_REGISTERED_DATASET {
                values.insert(key.into(), defaults.get(key).cloned().unwrap_or_default());
            }
        }
    }
    let backbone = backbone_choice(
        values.get("llm_backbone").map_or("", String::as_str),
        &backbones,
    );
    let fields_of = |group: &str| -> Vec<Field> {
        settings()
            .iter()
            .filter(|s| s.group == group)
            .map(|s| Field {
                key: s.key,
                label: s.label.clone(),
                basic: s.basic,
                help: s.help,
                kind: kind_name(&s.kind),
                choices: choices_for(s, problem_type),
                range: s.range.map(|r| r.to_string()).unwrap_or_default(),
                grid: s.grid,
                default: defaults.get(s.key).cloned().unwrap_or_default(),
                value: values.get(s.key).cloned().unwrap_or_default(),
                when: serde_json::to_string(&s.applies_when).unwrap_or_else(|_| "[]".into()),
            })
            .collect()
    };
    let mut sections = vec![minijinja::context! {
        key => "general", help => "The experiment as a whole.", fields => minijinja::value::Serde(fields_of(""))
    }];
    for g in groups() {
        sections.push(minijinja::context! { key => g.key, help => g.help, fields => minijinja::value::Serde(fields_of(g.key)) });
    }
    let backbones: Vec<_> = backbones
        .into_iter()
        .map(|b| minijinja::context! { name => b.name, path => b.path.display().to_string() })
        .collect();
    let dataset_keys = Store::SET_BY_REGISTERED_DATASET.join(" ");
    Ok(views::page(
        &csrf,
        "experiment_new.html",
        minijinja::context! {
            title => "New experiment",
            nav => "experiments",
            sections => sections,
            datasets => datasets.iter().map(|d| d.name.clone()).collect::<Vec<_>>(),
            backbones => backbones,
            dataset => dataset,
            dataset_keys => dataset_keys,
            backbone => backbone,
            from => q.get("from").cloned().unwrap_or_default(),
        },
    )?)
}

async fn experiments_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<Csrf>,
) -> Result<Html<String>, PageError> {
    let experiments = state.with_store(|s| Ok(s.experiments()?)).await?;
    Ok(views::page(
        &csrf,
        "experiments.html",
        minijinja::context! { title => "Experiments", nav => "experiments", experiments => minijinja::value::Serde(&experiments) },
    )?)
}

/// Everything the compare page shows.
#[derive(Debug, Serialize)]
pub struct CompareView {
    pub experiments: Vec<ExperimentInfo>,
    pub last_train_loss: Vec<Option<f64>>,
    pub last_validation_loss: Vec<Option<f64>>,
    /// Every setting: key, each experiment's value, whether they differ.
    pub settings: Vec<(String, Vec<String>, bool)>,
    /// Metric name → one series of (step, value) per experiment.
    pub series: BTreeMap<String, Vec<Vec<(u64, f64)>>>,
}

fn names_of(q: &HashMap<String, String>) -> Result<Vec<String>, ApiError> {
    let names: Vec<String> = q
        .get("names")
        .map(|n| {
            n.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if names.len() < 2 {
        return Err(ApiError::bad_request(
            "compare needs at least two experiments: `?names=a,b`",
        ));
    }
    Ok(names)
}

async fn compare(state: &AppState, names: Vec<String>) -> Result<CompareView, ApiError> {
    state
        .with_store(move |s| {
            let c = s.compare_experiments(&names)?;
            let mut series = BTreeMap::new();
            for metric in ["train_loss", "validation_loss", "lr"] {
                let mut per = Vec::new();
                for e in &c.experiments {
                    per.push(s.registry().metric_series(e.id, metric)?);
                }
                series.insert(metric.to_string(), per);
            }
            Ok(CompareView {
                experiments: c.experiments,
                last_train_loss: c.last_train_loss,
                last_validation_loss: c.last_validation_loss,
                settings: c.settings,
                series,
            })
        })
        .await
}

async fn compare_show(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<HashMap<String, String>>,
) -> Result<Json<CompareView>, ApiError> {
    let names = names_of(&q)?;
    Ok(Json(compare(&state, names).await?))
}

async fn compare_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    AppQuery(q): AppQuery<HashMap<String, String>>,
) -> Result<Html<String>, PageError> {
    let names = names_of(&q)?;
    let view = compare(&state, names.clone()).await?;
    let series = serde_json::to_string(&view.series).unwrap_or_default();
    Ok(views::page(
        &csrf,
        "compare.html",
        minijinja::context! {
            title => "Compare",
            nav => "experiments",
            view => minijinja::value::Serde(&view),
            names => names,
            series_json => series,
        },
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_round_trip_through_overrides() {
        let defaults = form_values(&Experiment::default());
        let mut cfg = Experiment::default();
        let pairs: Vec<(String, String)> = defaults.clone().into_iter().collect();
        ferrotune_config::apply_overrides(&mut cfg, &pairs).unwrap();
        assert_eq!(form_values(&cfg), defaults);
        assert_eq!(cfg.to_yaml(), Experiment::default().to_yaml());
    }
}
