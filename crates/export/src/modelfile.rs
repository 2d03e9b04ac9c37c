//! The Ollama `Modelfile` beside an exported GGUF: `FROM`, a `TEMPLATE` in Ollama's Go template syntax
//! translated from the model's chat template, a `PARAMETER stop` for each stop text, the run's sampling
//! settings and its default system prompt.
//!
//! Translation is by family, recognised from the Jinja source: ChatML (`<|im_start|>`), Llama 3
//! (`<|start_header_id|>`), Llama 2 (`[INST]` with `<<SYS>>`), Mistral (`[INST]`), Zephyr (`<|user|>` /
//! `<|assistant|>`), and Ferrotune's own marker templates (H2O's `<|prompt|>` / `<|answer|>` and any other
//! markers), which are written from the markers themselves. Anything else is an error naming the template.

use ferrotune_config::Experiment;

use crate::error::{Error, Result};
use crate::template::{Markers, TemplateSource};

/// A recognised chat template family.
#[derive(Debug, Clone, PartialEq)]
pub enum Family {
    ChatMl,
    Llama3,
    Llama2,
    Mistral,
    Zephyr,
    Markers(Markers),
}

impl Family {
    /// The family of a template, or an error naming it.
    pub fn of(source: &TemplateSource) -> Result<Family> {
        let t = match source {
            TemplateSource::Markers(m) => return Ok(Family::Markers(m.clone())),
            TemplateSource::Backbone(t) => t,
        };
        Ok(if t.contains("<|im_start|>") {
            Family::ChatMl
        } else if t.contains("<|start_header_id|>") {
            Family::Llama3
        } else if t.contains("[INST]") && t.contains("<<SYS>>") {
            Family::Llama2
        } else if t.contains("[INST]") {
            Family::Mistral
        } else if t.contains("<|user|>") && t.contains("<|assistant|>") {
            Family::Zephyr
        } else {
            let mut start: String = t.chars().take(80).collect();
            if start.len() < t.len() {
                start.push('…');
            }
            return Err(Error::UnknownTemplate { start });
        })
    }

    /// Its name in messages and the model card.
    pub fn name(&self) -> &'static str {
        match self {
            Family::ChatMl => "ChatML",
            Family::Llama3 => "Llama 3",
            Family::Llama2 => "Llama 2",
            Family::Mistral => "Mistral",
            Family::Zephyr => "Zephyr",
            Family::Markers(_) => "Ferrotune markers",
        }
    }

    /// The Go template (llama.cpp adds the BOS itself, so none is written).
    pub fn go_template(&self, eos: &str) -> String {
        match self {
            Family::ChatMl => "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n".into(),
            Family::Llama3 => "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n".into(),
            Family::Llama2 => format!("{{{{- $system := \"\" }}}}{{{{- range .Messages }}}}{{{{- if eq .Role \"system\" }}}}{{{{ $system = .Content }}}}{{{{- else if eq .Role \"user\" }}}}[INST] {{{{ if $system }}}}<<SYS>>\n{{{{ $system }}}}\n<</SYS>>\n\n{{{{ $system = \"\" }}}}{{{{ end }}}}{{{{ .Content }}}} [/INST]{{{{- else if eq .Role \"assistant\" }}}} {{{{ .Content }}}} {eos}{{{{- end }}}}{{{{- end }}}}"),
            Family::Mistral => format!("{{{{- $system := \"\" }}}}{{{{- range .Messages }}}}{{{{- if eq .Role \"system\" }}}}{{{{ $system = .Content }}}}{{{{- else if eq .Role \"user\" }}}}[INST] {{{{ if $system }}}}{{{{ $system }}}}\n\n{{{{ $system = \"\" }}}}{{{{ end }}}}{{{{ .Content }}}}[/INST]{{{{- else if eq .Role \"assistant\" }}}} {{{{ .Content }}}}{eos}{{{{- end }}}}{{{{- end }}}}"),
            Family::Zephyr => format!("{{{{- range .Messages }}}}<|{{{{ .Role }}}}|>\n{{{{ .Content }}}}{eos}\n{{{{ end }}}}<|assistant|>\n"),
            Family::Markers(m) => {
                let lit = |s: &str| {
                    if s.is_empty() {
                        String::new()
                    } else {
                        format!("{{{{ {} }}}}", serde_json::to_string(s).expect("a string serializes"))
                    }
                };
                let eos_if = |on: bool| if on { lit(eos) } else { String::new() };
                format!(
                    "{{{{- range .Messages }}}}{{{{- if eq .Role \"system\" }}}}{}{{{{ .Content }}}}{}{{{{- else if eq .Role \"user\" }}}}{}{{{{ .Content }}}}{}{}{{{{- else if eq .Role \"assistant\" }}}}{{{{ .Content }}}}{}{{{{- end }}}}{{{{- end }}}}",
                    lit(&m.system_start),
                    eos_if(m.eos_after_system),
                    lit(&m.prompt_start),
                    eos_if(m.eos_after_prompt),
                    lit(&m.answer_separator),
                    eos_if(m.eos_after_answer),
                )
            }
        }
    }

    /// The texts that end an answer.
    pub fn stops(&self, eos: &str) -> Vec<String> {
        let mut stops: Vec<String> = match self {
            Family::ChatMl => vec!["<|im_start|>".into(), "<|im_end|>".into()],
            Family::Llama3 => vec![
                "<|start_header_id|>".into(),
                "<|end_header_id|>".into(),
                "<|eot_id|>".into(),
            ],
            Family::Llama2 | Family::Mistral => vec!["[INST]".into(), "[/INST]".into()],
            Family::Zephyr => vec!["<|user|>".into(), "<|system|>".into()],
            Family::Markers(m) => [m.prompt_start.trim(), m.system_start.trim()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        };
        if !eos.is_empty() && !stops.iter().any(|s| s == eos) {
            stops.push(eos.to_string());
        }
        stops
    }
}

/// The default system prompt a ChatML template inserts when a conversation has none (SmolLM2's and Qwen2's
/// "You are a helpful assistant."), which Ollama takes as `SYSTEM`.
fn default_system(source: &TemplateSource) -> Option<String> {
    let TemplateSource::Backbone(t) = source else {
        return None;
    };
    let start = t.find("<|im_start|>system\n")? + "<|im_start|>system\n".len();
    let text = &t[start..start + t[start..].find("<|im_end|>")?];
    (!text.is_empty() && !text.contains(['{', '}', '\'', '"'])).then(|| text.to_string())
}

/// A Go/Modelfile string literal (JSON's escapes are Go's).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// The Modelfile for `gguf_file` (a file name beside it), a model whose chat template is `source` and whose
/// EOS token text is `eos`, with the run's prediction settings.
pub fn modelfile(
    gguf_file: &str,
    source: &TemplateSource,
    eos: &str,
    cfg: &Experiment,
) -> Result<String> {
    let family = Family::of(source)?;
    let template = family.go_template(eos);
    if template.contains("\"\"\"") {
        return Err(Error::UnknownTemplate {
            start: "a template that contains `\"\"\"`".into(),
        });
    }
    let p = &cfg.prediction;
    let mut out = format!("# Ollama Modelfile written by Ferrotune (chat template family: {}).\n# ollama create NAME -f Modelfile\nFROM ./{gguf_file}\n\nTEMPLATE \"\"\"{template}\"\"\"\n\n", family.name());
    let mut stops = family.stops(eos);
    for s in p
        .stop_tokens
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if !stops.iter().any(|x| x == s) {
            stops.push(s.to_string());
        }
    }
    for s in &stops {
        out.push_str(&format!("PARAMETER stop {}\n", quoted(s)));
    }
    let temperature = if p.do_sample { p.temperature } else { 0.0 };
    out.push_str(&format!("PARAMETER temperature {temperature}\n"));
    if p.do_sample {
        out.push_str(&format!("PARAMETER top_p {}\n", p.top_p));
        if p.top_k > 0 {
            out.push_str(&format!("PARAMETER top_k {}\n", p.top_k));
        }
    }
    out.push_str(&format!(
        "PARAMETER repeat_penalty {}\n",
        p.repetition_penalty
    ));
    out.push_str(&format!(
        "PARAMETER num_predict {}\n",
        p.max_length_inference
    ));
    if let Some(system) = default_system(source) {
        out.push_str(&format!("\nSYSTEM {}\n", quoted(&system)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backbone(t: &str) -> TemplateSource {
        TemplateSource::Backbone(t.into())
    }

    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
    const LLAMA3: &str = "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
    const LLAMA2: &str = "{% if messages[0]['role'] == 'system' %}{% set system = '<<SYS>>\n' + messages[0]['content'] + '\n<</SYS>>\n\n' %}{% endif %}{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + ' ' + eos_token }}{% endif %}{% endfor %}";
    const MISTRAL: &str = "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}";
    const ZEPHYR: &str = "{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + eos_token }}{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n'  + message['content'] + eos_token }}{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}{% endfor %}";

    #[test]
    fn each_template_family_gets_its_go_template_and_stops() {
        let cfg = Experiment::default();
        let cases: [(&str, &str, &str, &[&str]); 5] = [
            (CHATML, "<|im_end|>", "<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n", &["<|im_start|>", "<|im_end|>"]),
            (LLAMA3, "<|eot_id|>", "<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>", &["<|eot_id|>", "<|start_header_id|>"]),
            (LLAMA2, "</s>", "[INST] {{ if $system }}<<SYS>>\n{{ $system }}\n<</SYS>>\n\n", &["[INST]", "</s>"]),
            (MISTRAL, "</s>", "[INST] {{ if $system }}{{ $system }}\n\n{{ $system = \"\" }}{{ end }}{{ .Content }}[/INST]", &["[INST]", "[/INST]", "</s>"]),
            (ZEPHYR, "</s>", "<|{{ .Role }}|>\n{{ .Content }}</s>\n{{ end }}<|assistant|>\n", &["<|user|>", "</s>"]),
        ];
        for (template, eos, go, stops) in cases {
            let text = modelfile("m.q8_0.gguf", &backbone(template), eos, &cfg).unwrap();
            assert!(text.contains("FROM ./m.q8_0.gguf\n"), "{text}");
            assert!(text.contains(go), "{template}\n---\n{text}");
            for s in stops {
                assert!(
                    text.contains(&format!("PARAMETER stop {}", quoted(s))),
                    "{s}: {text}"
                );
            }
            assert!(
                text.contains("PARAMETER temperature 0\n")
                    && text.contains("PARAMETER num_predict 256\n"),
                "{text}"
            );
        }
        let chatml = modelfile("m.gguf", &backbone(CHATML), "<|im_end|>", &cfg).unwrap();
        assert!(
            chatml.ends_with("SYSTEM \"You are a helpful AI assistant named SmolLM.\"\n"),
            "{chatml}"
        );
    }

    #[test]
    fn marker_templates_are_written_from_the_markers_and_unknown_ones_are_named() {
        let mut cfg = Experiment::default();
        cfg.dataset.text_prompt_start = "### Q:\\n".into();
        cfg.dataset.add_eos_token_to_prompt = false;
        cfg.prediction.do_sample = true;
        cfg.prediction.temperature = 0.3;
        cfg.prediction.stop_tokens = "###, END".into();
        let source = TemplateSource::Markers(Markers::of(&cfg, true));
        let text = modelfile("m.gguf", &source, "</s>", &cfg).unwrap();
        assert!(
            text.contains("{{- else if eq .Role \"user\" }}{{ \"### Q:\\n\" }}{{ .Content }}{{ \"<|answer|>\" }}{{- else if eq .Role \"assistant\" }}{{ .Content }}{{ \"</s>\" }}"),
            "{text}"
        );
        for s in ["### Q:", "<|system|>", "</s>", "###", "END"] {
            assert!(
                text.contains(&format!("PARAMETER stop {}\n", quoted(s))),
                "{s}: {text}"
            );
        }
        assert!(
            text.contains("PARAMETER temperature 0.3\nPARAMETER top_p 1\n"),
            "{text}"
        );
        let err = modelfile(
            "m.gguf",
            &backbone("{% for m in messages %}>> {{ m.content }}{% endfor %}"),
            "</s>",
            &cfg,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`{% for m in messages %}>> {{ m.content }}{% endfor %}`")
                && err.contains("--no-modelfile"),
            "{err}"
        );
    }
}
