//! Terminal rendering of experiments: the list table, one experiment's description, and a comparison.

use ferrotune_store::{format_utc, Comparison, ExperimentInfo, Store};

fn progress(e: &ExperimentInfo) -> String {
    match e.total_steps {
        Some(total) => format!("{:>3.0}% {}/{total}", e.progress * 100.0, e.step),
        None => "-".into(),
    }
}

fn number(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.4}"))
}

fn metric(e: &ExperimentInfo) -> String {
    match &e.metric_name {
        Some(name) => format!(
            "{name} {} (best {})",
            number(e.last_metric),
            number(e.best_metric)
        ),
        None => "-".into(),
    }
}

/// The list: one line per experiment.
pub fn table(all: &[ExperimentInfo]) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<28} {:<9} {:<14} {:<38} {:<16} {:<8} CREATED",
        "NAME", "STATUS", "PROGRESS", "METRIC", "DATASET", "DEVICE"
    )];
    for e in all {
        lines.push(format!(
            "{:<28} {:<9} {:<14} {:<38} {:<16} {:<8} {}",
            e.name,
            e.status.name(),
            progress(e),
            metric(e),
            e.dataset.as_deref().unwrap_or("-"),
            e.device,
            format_utc(e.created)
        ));
    }
    lines
}

/// One experiment: its fields, the last training loss, and its message (why it failed or stopped).
pub fn describe(store: &Store, e: &ExperimentInfo) -> anyhow::Result<Vec<String>> {
    let loss = store.registry().metric_series(e.id, "train_loss")?;
    let mut lines = vec![
        format!("name:        {}", e.name),
        format!("status:      {}", e.status.name()),
        format!("progress:    {}", progress(e)),
        format!("metric:      {}", metric(e)),
        format!("train loss:  {}", number(loss.last().map(|(_, v)| *v))),
        format!("dataset:     {}", e.dataset.as_deref().unwrap_or("-")),
        format!("device:      {}", e.device),
        format!("folder:      {}", e.output_dir.display()),
        format!("created:     {}", format_utc(e.created)),
    ];
    if let Some(t) = e.started {
        lines.push(format!("started:     {}", format_utc(t)));
    }
    if let Some(t) = e.finished {
        lines.push(format!("ended:       {}", format_utc(t)));
    }
    if let Some(pid) = e.pid {
        lines.push(format!("pid:         {pid}"));
    }
    if e.resume {
        lines.push("next run:    resumes from the checkpoint".into());
    }
    if let Some(m) = &e.message {
        lines.push(format!(
            "message:     {}",
            m.replace('\n', "\n             ")
        ));
    }
    Ok(lines)
}

/// The comparison: a column per experiment, summary rows, then only the settings that differ.
pub fn compare(c: &Comparison) -> Vec<String> {
    let width = c
        .experiments
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(0)
        .max(14);
    let row = |label: &str, cells: Vec<String>| {
        let mut line = format!("{label:<34}");
        for cell in cells {
            line.push_str(&format!(" {cell:<width$}"));
        }
        line.trim_end().to_string()
    };
    let each = |f: &dyn Fn(usize, &ExperimentInfo) -> String| {
        c.experiments
            .iter()
            .enumerate()
            .map(|(i, e)| f(i, e))
            .collect()
    };
    let mut lines = vec![
        row("", each(&|_, e| e.name.clone())),
        row("status", each(&|_, e| e.status.name().into())),
        row("progress", each(&|_, e| progress(e))),
        row(
            "last train loss",
            each(&|i, _| number(c.last_train_loss[i])),
        ),
        row(
            "last validation loss",
            each(&|i, _| number(c.last_validation_loss[i])),
        ),
        row(
            "metric",
            each(&|_, e| e.metric_name.clone().unwrap_or_else(|| "-".into())),
        ),
        row("best metric", each(&|_, e| number(e.best_metric))),
        row("last metric", each(&|_, e| number(e.last_metric))),
    ];
    if c.differences.is_empty() {
        lines.push(String::new());
        lines.push("settings: identical".into());
    } else {
        lines.push(String::new());
        lines.push("settings that differ:".into());
        for (key, values) in &c.differences {
            lines.push(row(key, values.clone()));
        }
    }
    lines
}
