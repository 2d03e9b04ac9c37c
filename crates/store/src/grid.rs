//! Names of grid-search experiments: the base name followed by each varied setting's short label and value
//! (`base-lr0.0001-r8`). The expansion itself is [`ferrotune_config::Experiment::expand_grid`].

use ferrotune_config::{Experiment, Value};

/// The short label of a grid-enabled setting in experiment names.
fn label(key: &str) -> &str {
    let name = key.rsplit('.').next().unwrap_or(key);
    match name {
        "learning_rate" => "lr",
        "lora_r" => "r",
        "lora_alpha" => "alpha",
        "lora_dropout" => "dropout",
        "batch_size" => "bs",
        "epochs" => "ep",
        "llm_backbone" => "",
        other => other,
    }
}

/// A value as it appears in a name: numbers as written (`0.0001`), paths by their last component, anything
/// outside letters, digits, `.`, `_` and `-` replaced by `_`.
fn value_text(value: &Value) -> String {
    let text = match value {
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.to_string(),
            (_, Some(i), _) => i.to_string(),
            (_, _, Some(f)) => f.to_string(),
            _ => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
        Value::String(s) => std::path::Path::new(s.trim_end_matches('/'))
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| s.clone()),
        other => format!("{other:?}"),
    };
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One experiment per combination of `cfg`'s grid values, each with its name: `base` when there is no grid,
/// else `base-<label><value>…` in the order of the settings' keys.
pub fn expand(cfg: &Experiment, base: &str) -> Vec<(String, Experiment)> {
    let keys: Vec<&'static str> = cfg.grid.keys().copied().collect();
    cfg.expand_grid()
        .into_iter()
        .map(|run| {
            let mut name = base.to_string();
            for key in &keys {
                if let Some(v) = run.get(key) {
                    name.push('-');
                    name.push_str(label(key));
                    name.push_str(&value_text(&v));
                }
            }
            (name, run)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_varied_values() {
        let cfg = Experiment::from_yaml_str(
            "grid_search: true\ntraining:\n  learning_rate: [0.0001, 0.00005]\n  lora_r: [8, 16]\n",
            "`t`",
        )
        .unwrap();
        let names: Vec<String> = expand(&cfg, "base").into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "base-lr0.0001-r8",
                "base-lr0.0001-r16",
                "base-lr0.00005-r8",
                "base-lr0.00005-r16"
            ]
        );
        let runs = expand(&cfg, "base");
        assert_eq!(runs[3].1.training.lora_r, 16);
        assert_eq!(runs[3].1.training.learning_rate, 0.00005);
    }

    #[test]
    fn without_a_grid_the_base_name_is_kept_and_paths_shorten() {
        let cfg = Experiment::default();
        assert_eq!(expand(&cfg, "solo")[0].0, "solo");
        assert_eq!(value_text(&Value::from("/models/smol lm/")), "smol_lm");
    }
}
