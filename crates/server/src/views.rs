//! Templates (built into the binary; `.html` names escape every value) and the static files.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, Value};

use crate::error::ApiError;
use crate::security::Csrf;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("home.html", include_str!("../templates/home.html")),
    (
        "backbones.html",
        include_str!("../templates/backbones.html"),
    ),
    ("datasets.html", include_str!("../templates/datasets.html")),
    ("dataset.html", include_str!("../templates/dataset.html")),
    (
        "dataset_new.html",
        include_str!("../templates/dataset_new.html"),
    ),
    (
        "experiments.html",
        include_str!("../templates/experiments.html"),
    ),
    (
        "experiment.html",
        include_str!("../templates/experiment.html"),
    ),
    (
        "experiment_new.html",
        include_str!("../templates/experiment_new.html"),
    ),
    ("compare.html", include_str!("../templates/compare.html")),
    ("settings.html", include_str!("../templates/settings.html")),
];

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            // The templates are ours and tested; a broken one fails every page test.
            if let Err(e) = env.add_template(name, source) {
                panic!("template {name}: {e}");
            }
        }
        env.add_filter("utc", |secs: Option<u64>| {
            secs.map(ferrotune_store::format_utc).unwrap_or_default()
        });
        env.add_filter("urlencode", |s: String| {
            crate::security::urlencode(&s).replace('/', "%2F")
        });
        env.add_filter("code_spans", |s: String| {
            Value::from_safe_string(code_spans(&s))
        });
        env.add_filter("better", |metric: String| better_words(&metric));
        env.add_filter("bytes", |n: u64| human_bytes(n));
        env.add_filter("count", |n: u64| match n {
            n if n >= 1_000_000_000 => format!("{:.2} B", n as f64 / 1e9),
            n if n >= 1_000_000 => format!("{:.1} M", n as f64 / 1e6),
            n if n >= 1_000 => format!("{:.1} k", n as f64 / 1e3),
            n => n.to_string(),
        });
        env.add_filter("percent", |x: f64| format!("{:.0} %", x * 100.0));
        env.add_filter("num", |x: Option<f64>| match x {
            Some(v) if v.abs() >= 1000.0 || v == v.trunc() => format!("{v:.0}"),
            Some(v) => format!("{v:.4}"),
            None => "–".into(),
        });
        env
    })
}

/// A line of a message or help text as HTML: escaped, with its `code` spans as `<code>` (not backticks).
pub fn code_spans(line: &str) -> String {
    line.split('`')
        .enumerate()
        .filter(|(_, t)| !t.is_empty())
        .map(|(i, t)| {
            let text = crate::charts::escape(t);
            if i % 2 == 1 {
                format!("<code>{text}</code>")
            } else {
                text
            }
        })
        .collect()
}

/// Which way the metric `name` improves, in words ("lower is better").
pub fn better_words(name: &str) -> &'static str {
    if ferrotune_store::tracking::higher_is_better(name) {
        "higher is better"
    } else {
        "lower is better"
    }
}

/// `n` bytes as `1.2 GiB`.
pub fn human_bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < units.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[unit])
    }
}

/// Renders template `name`.
pub fn render(name: &str, ctx: Value) -> Result<String, ApiError> {
    environment()
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| ApiError::internal(format!("template {name}: {e:#}")))
}

/// Renders a page: `ctx` plus the forgery-protection token for its script.
pub fn page(csrf: &Csrf, name: &str, ctx: Value) -> Result<Html<String>, ApiError> {
    let ctx = minijinja::context! { csrf => csrf.0.clone(), ..ctx };
    render(name, ctx).map(Html)
}

/// `GET /static/app.js`.
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../static/app.js"),
    )
        .into_response()
}

/// `GET /static/style.css`.
pub async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../static/style.css"),
    )
        .into_response()
}

/// `GET /static/favicon.svg` (and `/favicon.ico`, which browsers ask for on their own).
pub async fn favicon() -> Response {
    (
        [(header::CONTENT_TYPE, "image/svg+xml")],
        include_str!("../static/favicon.svg"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_in_html_templates() {
        let html = render(
            "error.html",
            minijinja::context! {
                title => "t",
                status => 400,
                problem => vec!["<script>alert(1)</script>"],
                help => vec!["`<b>` then"],
            },
        )
        .unwrap();
        assert!(!html.contains("<script>alert(1)"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;"), "{html}");
        assert!(html.contains("<code>&lt;b&gt;</code> then"), "{html}");
    }

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}
