//! The pipeline: read the file(s), check them, chain conversations, split and subsample by conversation, and
//! tokenize every sample.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::checks::{self, Columns};
use crate::conversation::{self, Conversations, Turn};
use crate::dataset::read_table;
use crate::error::{Error, Result};
use crate::format::{Encoder, Sample, TurnIds};
use crate::labels::{self, RawLabels, Targets};
use crate::settings::{DatasetSettings, ValidationStrategy};
use crate::split::{self, Rng, STREAM_AUGMENT, STREAM_SAMPLE_TRAIN, STREAM_SAMPLE_VALIDATION};
use crate::table::Table;
use crate::tokenizer::TextTokenizer;

/// Tokenized train and validation samples.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedData {
    pub train: Vec<Sample>,
    pub validation: Vec<Sample>,
    pub stats: DataStats,
    /// With parent augmentation (`skip_parent_probability` / `random_parent_probability` > 0): for each epoch,
    /// the training samples re-assembled with that epoch's draws (same count and order as `train`).
    pub train_epochs: Option<Vec<Vec<Sample>>>,
    /// Preference pairs (`dataset.rejected_answer_column` set): the rejected sample of each sample of `train` and
    /// `validation`, index by index — the same conversation whose last turn has the rejected answer (and the
    /// rejected prompt, if set); earlier turns keep their chosen answers.
    pub rejected: Option<Rejected>,
    /// Classification and regression (`DatasetSettings::targets` set): each sample's labels or target values.
    pub targets: Option<Targets>,
}

/// The rejected halves of preference pairs, aligned with [`PreparedData::train`] and [`PreparedData::validation`].
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub train: Vec<Sample>,
    pub validation: Vec<Sample>,
}

impl PreparedData {
    /// The training samples of `epoch` (augmented when augmentation is on).
    pub fn train_for_epoch(&self, epoch: u64) -> &[Sample] {
        match &self.train_epochs {
            Some(epochs) if !epochs.is_empty() => &epochs[(epoch as usize).min(epochs.len() - 1)],
            _ => &self.train,
        }
    }
}

/// What preparation found, for logs and the GUI.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataStats {
    pub train: SideStats,
    pub validation: SideStats,
    /// Things worth telling the user that are not errors.
    pub warnings: Vec<String>,
}

/// Counts for one side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SideStats {
    /// Rows of the file on this side (after `data_sample`).
    pub rows: usize,
    pub conversations: usize,
    pub samples: usize,
    /// Samples cut to `max_length`.
    pub truncated: usize,
    /// Samples without any label.
    pub fully_masked: usize,
    pub label_tokens: usize,
    pub max_tokens: usize,
    pub mean_tokens: f64,
}

/// A checked file with its conversations.
struct Source {
    table: Table,
    cols: Columns,
    convs: Conversations,
    /// Conversation group of each row (roots numbered in row order).
    group: Vec<usize>,
    n_groups: usize,
}

fn load(path: &Path, settings: &DatasetSettings) -> Result<Source> {
    let table = read_table(path)?;
    if table.is_empty() {
        return Err(Error::EmptyDataset {
            path: path.to_path_buf(),
            help: "the file needs a header (or keys) and at least one row".into(),
        });
    }
    let cols = checks::resolve_columns(&table, settings)?;
    checks::check_answers(&table, &cols)?;
    let convs = conversation::conversations(&table, &cols, settings.limit_chained_samples)?;
    let mut root_group = vec![usize::MAX; table.len()];
    let mut n_groups = 0;
    for (row, &root) in convs.root.iter().enumerate() {
        if row == root {
            root_group[row] = n_groups;
            n_groups += 1;
        }
    }
    let group = convs.root.iter().map(|&r| root_group[r]).collect();
    Ok(Source {
        table,
        cols,
        convs,
        group,
        n_groups,
    })
}

/// Reads, checks, splits and tokenizes the data of `settings` for `tokenizer`.
pub fn prepare(settings: &DatasetSettings, tokenizer: &TextTokenizer) -> Result<PreparedData> {
    settings.validate()?;
    let encoder = Encoder::new(settings, tokenizer)?;
    let train_source = load(&settings.train_dataframe, settings)?;
    let augmenting =
        settings.skip_parent_probability > 0.0 || settings.random_parent_probability > 0.0;
    let mut train_epochs: Vec<Vec<Sample>> = Vec::new();
    let sample = |groups: Vec<usize>, validation: bool| {
        if settings.samples_side(validation) {
            let stream = if validation {
                STREAM_SAMPLE_VALIDATION
            } else {
                STREAM_SAMPLE_TRAIN
            };
            split::sample_groups(&groups, settings.data_sample, settings.seed, stream)
        } else {
            groups
        }
    };
    let (train, validation, targets) = match settings.validation_strategy {
        ValidationStrategy::Automatic => {
            if train_source.n_groups < 2 {
                return Err(Error::Split {
                    path: settings.train_dataframe.clone(),
                    message: format!("it has {} conversation(s)", train_source.n_groups),
                    help: "add rows, or set `dataset.validation_strategy` to custom with a `dataset.validation_dataframe`"
                        .into(),
                });
            }
            let (train_groups, val_groups) = split::split_groups(
                train_source.n_groups,
                settings.validation_size,
                settings.seed,
            );
            let train = side(
                &train_source,
                &sample(train_groups, false),
                &encoder,
                augmenting.then_some(&mut train_epochs),
            )?;
            let validation = side(&train_source, &sample(val_groups, true), &encoder, None)?;
            let targets = side_targets(
                settings,
                &train_source,
                &train.0,
                &train_source,
                &validation.0,
            )?;
            (train, validation, targets)
        }
        ValidationStrategy::Custom => {
            let path = settings
                .validation_dataframe
                .as_deref()
                .unwrap_or(Path::new(""));
            let val_source = load(path, settings)?;
            let train = side(
                &train_source,
                &sample((0..train_source.n_groups).collect(), false),
                &encoder,
                augmenting.then_some(&mut train_epochs),
            )?;
            let validation = side(
                &val_source,
                &sample((0..val_source.n_groups).collect(), true),
                &encoder,
                None,
            )?;
            let targets = side_targets(
                settings,
                &train_source,
                &train.0,
                &val_source,
                &validation.0,
            )?;
            (train, validation, targets)
        }
    };
    let (train, train_stats, train_rejected) = train;
    let (validation, validation_stats, validation_rejected) = validation;
    let rejected = match (train_rejected, validation_rejected) {
        (Some(train), Some(validation)) => Some(Rejected { train, validation }),
        _ => None,
    };
    // A head's labels are the targets; the samples' token labels are not trained on.
    if targets.is_none() && train.iter().all(|s| s.label_count() == 0) {
        return Err(Error::NoTrainableLabels {
            samples: train.len(),
            help: "the answers are empty or cut off: raise `dataset.max_length`, set `dataset.add_eos_token_to_answer` to true (each answer then ends in a labelled EOS), or set `dataset.mask_prompt_labels` to false".into(),
        });
    }
    let mut warnings = Vec::new();
    if settings.parent_id_column.is_none() {
        if let Some(column) = train_source
            .table
            .columns
            .iter()
            .find(|c| c.eq_ignore_ascii_case("parent_id"))
        {
            warnings.push(format!(
                "the data has a `{column}` column, but `dataset.parent_id_column` is `None`: every row trains as a \
                 conversation of its own; set `dataset.parent_id_column: {column}` (and `dataset.id_column`) to \
                 chain the turns"
            ));
        }
    }
    for (name, stats) in [("train", &train_stats), ("validation", &validation_stats)] {
        if stats.truncated > 0 {
            warnings.push(format!(
                "{} of {} {name} samples were longer than `dataset.max_length` ({}) and were truncated",
                stats.truncated, stats.samples, settings.max_length
            ));
        }
        if stats.fully_masked > 0 {
            warnings.push(format!(
                "{} of {} {name} samples have no labelled token (empty answers?)",
                stats.fully_masked, stats.samples
            ));
        }
    }
    Ok(PreparedData {
        train,
        validation,
        stats: DataStats {
            train: train_stats,
            validation: validation_stats,
            warnings,
        },
        train_epochs: augmenting.then_some(train_epochs),
        rejected,
        targets,
    })
}

/// The head's targets of both sides, when the settings have label columns.
fn side_targets(
    settings: &DatasetSettings,
    train_source: &Source,
    train: &[Sample],
    validation_source: &Source,
    validation: &[Sample],
) -> Result<Option<Targets>> {
    let Some(target_settings) = &settings.targets else {
        return Ok(None);
    };
    fn raw<'a>(source: &'a Source, samples: &'a [Sample]) -> RawLabels<'a> {
        RawLabels {
            table: &source.table,
            columns: &source.cols.targets,
            samples,
        }
    }
    labels::targets(
        target_settings,
        &raw(train_source, train),
        &raw(validation_source, validation),
    )
    .map(Some)
}

/// One side's samples, their counts, and with preference pairs the rejected sample of each.
type SideSamples = (Vec<Sample>, SideStats, Option<Vec<Sample>>);

/// Tokenizes the samples of `source` whose conversation is in `groups` (sorted).
fn side(
    source: &Source,
    groups: &[usize],
    encoder: &Encoder,
    augment: Option<&mut Vec<Vec<Sample>>>,
) -> Result<SideSamples> {
    let mut in_side = vec![false; source.n_groups];
    for &g in groups {
        in_side[g] = true;
    }
    let rows: Vec<usize> = (0..source.table.len())
        .filter(|&r| in_side[source.group[r]])
        .collect();
    let turns: Vec<Turn> = rows
        .iter()
        .map(|&r| conversation::turn(&source.table, &source.cols, encoder.settings(), r))
        .collect();
    let turn_ids = par_map(encoder.settings().workers, &turns, |t| encoder.turn_ids(t))?;
    let mut slot = vec![usize::MAX; source.table.len()];
    for (k, &r) in rows.iter().enumerate() {
        slot[r] = k;
    }
    let chains: Vec<&Vec<usize>> = source
        .convs
        .chains
        .iter()
        .filter(|c| in_side[source.group[c[0]]])
        .collect();
    let build = |chain: &[usize], root: usize| {
        let chain_turns: Vec<&Turn> = chain.iter().map(|&r| &turns[slot[r]]).collect();
        let chain_ids: Vec<&TurnIds> = chain.iter().map(|&r| &turn_ids[slot[r]]).collect();
        let end = chain[chain.len() - 1];
        let id = conversation::conversation_id(&source.table, &source.cols, root);
        encoder.sample(&chain_turns, &chain_ids, id, end)
    };
    let samples = par_map(encoder.settings().workers, &chains, |chain| {
        build(chain, chain[0])
    })?;
    let rejected = match source.cols.rejected {
        None => None,
        Some(_) => Some(par_map(encoder.settings().workers, &chains, |chain| {
            let end = chain[chain.len() - 1];
            let last =
                conversation::rejected_turn(&source.table, &source.cols, encoder.settings(), end)
                    .expect("a rejected column is set");
            let last_ids = encoder.turn_ids(&last)?;
            let mut chain_turns: Vec<&Turn> = chain.iter().map(|&r| &turns[slot[r]]).collect();
            let mut chain_ids: Vec<&TurnIds> = chain.iter().map(|&r| &turn_ids[slot[r]]).collect();
            *chain_turns.last_mut().expect("a chain has a row") = &last;
            *chain_ids.last_mut().expect("a chain has a row") = &last_ids;
            let id = conversation::conversation_id(&source.table, &source.cols, chain[0]);
            encoder.sample(&chain_turns, &chain_ids, id, end)
        })?),
    };
    if let Some(out) = augment {
        let settings = encoder.settings();
        for epoch in 0..settings.epochs.max(1) as u64 {
            let variants: Vec<(Vec<usize>, usize)> = chains
                .iter()
                .enumerate()
                .map(|(k, chain)| {
                    let mut rng = Rng::new(
                        settings.seed,
                        STREAM_AUGMENT,
                        epoch * chains.len() as u64 + k as u64,
                    );
                    let last = chain[chain.len() - 1];
                    let mut parents: Vec<usize> = chain[..chain.len() - 1].to_vec();
                    if chains.len() > 1 && chance(&mut rng, settings.random_parent_probability) {
                        let mut other = rng.below(chains.len() - 1);
                        if other >= k {
                            other += 1;
                        }
                        parents = chains[other].to_vec();
                    }
                    parents.retain(|_| !chance(&mut rng, settings.skip_parent_probability));
                    parents.push(last);
                    (parents, chain[0])
                })
                .collect();
            out.push(par_map(
                encoder.settings().workers,
                &variants,
                |(chain, root)| build(chain, *root),
            )?);
        }
    }
    let total: usize = samples.iter().map(|s| s.input_ids.len()).sum();
    let stats = SideStats {
        rows: rows.len(),
        conversations: groups.len(),
        samples: samples.len(),
        truncated: samples.iter().filter(|s| s.truncated).count(),
        fully_masked: samples.iter().filter(|s| s.label_count() == 0).count(),
        label_tokens: samples.iter().map(Sample::label_count).sum(),
        max_tokens: samples.iter().map(|s| s.input_ids.len()).max().unwrap_or(0),
        mean_tokens: if samples.is_empty() {
            0.0
        } else {
            total as f64 / samples.len() as f64
        },
    };
    Ok((samples, stats, rejected))
}

/// A draw that is true with probability `p`.
fn chance(rng: &mut Rng, p: f64) -> bool {
    p > 0.0 && ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
}

/// `f` over `items` on the available cores, in order.
fn par_map<T: Sync, R: Send>(
    workers: usize,
    items: &[T],
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = if workers == 0 { cores } else { workers }.min(items.len() / 256 + 1);
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|chunk| scope.spawn(move || chunk.iter().map(f).collect::<Result<Vec<R>>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for handle in handles {
            out.extend(handle.join().expect("a tokenization thread panicked")?);
        }
        Ok(out)
    })
}
