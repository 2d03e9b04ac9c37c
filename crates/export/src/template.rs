//! The chat template an exported model carries: the backbone's own when the run trained with it
//! (`dataset.use_chat_template`), otherwise a Jinja template that renders the run's marker texts exactly as
//! `ferrotune-data` assembled the training samples (system marker + system [+ EOS], prompt marker + prompt
//! [+ EOS] + answer marker, answer [+ EOS]), so that `apply_chat_template` gives the tokens the model learned.

use ferrotune_config::Experiment;
use ferrotune_data::settings::unescape;

/// Where the exported chat template comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateSource {
    /// The backbone's own template (the run set `dataset.use_chat_template`).
    Backbone(String),
    /// Built from the run's markers.
    Markers(Markers),
}

impl TemplateSource {
    /// The Jinja source.
    pub fn jinja(&self) -> String {
        match self {
            TemplateSource::Backbone(t) => t.clone(),
            TemplateSource::Markers(m) => m.jinja(),
        }
    }
}

/// The marker texts (escapes resolved) and EOS flags of a run, and whether a BOS starts each sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Markers {
    pub system_start: String,
    pub prompt_start: String,
    pub answer_separator: String,
    pub eos_after_system: bool,
    pub eos_after_prompt: bool,
    pub eos_after_answer: bool,
    /// The tokenizer's post-processor puts a BOS before every text (the samples start with it).
    pub bos: bool,
}

impl Markers {
    /// The run's markers.
    pub fn of(cfg: &Experiment, bos: bool) -> Markers {
        let d = &cfg.dataset;
        Markers {
            system_start: unescape(&d.text_system_start),
            prompt_start: unescape(&d.text_prompt_start),
            answer_separator: unescape(&d.text_answer_separator),
            eos_after_system: d.add_eos_token_to_system,
            eos_after_prompt: d.add_eos_token_to_prompt,
            eos_after_answer: d.add_eos_token_to_answer,
            bos,
        }
    }

    /// A Jinja chat template (transformers' conventions: `messages`, `bos_token`, `eos_token`,
    /// `add_generation_prompt`) that renders these markers. One line: no whitespace control can differ.
    pub fn jinja(&self) -> String {
        let lit = |s: &str| serde_json::to_string(s).expect("a string serializes");
        let eos = |on: bool| if on { "{{ eos_token }}" } else { "" };
        let mut t = String::new();
        if self.bos {
            t.push_str("{{ bos_token }}");
        }
        t.push_str("{% for message in messages %}");
        t.push_str(&format!(
            "{{% if message['role'] == 'system' %}}{{% if message['content'] %}}{{{{ {} + message['content'] }}}}{}{{% endif %}}",
            lit(&self.system_start),
            eos(self.eos_after_system)
        ));
        t.push_str(&format!(
            "{{% elif message['role'] == 'user' %}}{{{{ {} + message['content'] }}}}{}{{{{ {} }}}}",
            lit(&self.prompt_start),
            eos(self.eos_after_prompt),
            lit(&self.answer_separator)
        ));
        t.push_str(&format!(
            "{{% elif message['role'] == 'assistant' %}}{{{{ message['content'] }}}}{}",
            eos(self.eos_after_answer)
        ));
        t.push_str("{% else %}{{ raise_exception('Only system, user and assistant roles are supported') }}{% endif %}{% endfor %}");
        t
    }
}

/// The template of a run: the backbone's (`backbone_template`) when it trained with it, else the markers'.
pub fn for_run(
    cfg: &Experiment,
    backbone_template: Option<&str>,
    bos: bool,
) -> Option<TemplateSource> {
    if cfg.dataset.use_chat_template {
        backbone_template.map(|t| TemplateSource::Backbone(t.to_string()))
    } else {
        Some(TemplateSource::Markers(Markers::of(cfg, bos)))
    }
}

/// The exported template of `source`'s run, with the backbone's tokenizer (`None`: the run trained with the
/// backbone's chat template and the backbone has none, which training refuses — kept for old runs).
pub fn of_source(
    source: &crate::RunSource,
) -> crate::Result<(Option<TemplateSource>, ferrotune_data::TextTokenizer)> {
    let tok = ferrotune_data::TextTokenizer::from_dir(&source.backbone)
        .map_err(|e| crate::Error::Model(ferrotune_model::Error::from(e)))?;
    let with = tok.encode("a", true).unwrap_or_default();
    let without = tok.encode("a", false).unwrap_or_default();
    let bos = with.len() > without.len() && with.first() != without.first();
    Ok((
        for_run(&source.config, tok.chat_template_source(), bos),
        tok,
    ))
}
