//! The augmentations (`augmentation.*`) train to the end with finite losses, and each one changes the updates
//! (a setting that were silently ignored would train the baseline's adapter).

use ferrotune_test_support::{adapter_tensors, max_tensors_diff};

use crate::common::{
    assert_trained, experiment, experiment_on, plain, train, write_conversations, CHAINED, PLAIN,
};

/// `base` followed by `more`.
fn with<'a>(base: &[(&'a str, &'a str)], more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    base.iter().chain(more).copied().collect()
}

#[test]
fn token_masking_and_neftune_train_with_finite_losses_and_change_the_updates() {
    let dir = tempfile::tempdir().unwrap();
    let (plain_dir, _) = plain();
    let baseline = adapter_tensors(plain_dir);
    for (name, key, value) in [
        ("mask", "augmentation.token_mask_probability", "0.3"),
        ("neftune", "augmentation.neftune_noise_alpha", "5"),
    ] {
        let cfg = experiment(dir.path(), name, &with(PLAIN, &[(key, value)]));
        let ran = train(&cfg, false, None);
        assert_trained(&ran, name);
        let diff = max_tensors_diff(&baseline, &adapter_tensors(&cfg.output_dir()));
        assert!(diff > 1e-4, "{key} did not change the adapter ({diff})");
    }
}

#[test]
fn parent_augmentations_on_conversations_train_with_finite_losses_and_change_the_updates() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_conversations(dir.path());
    let run = |name: &str, more: &[(&str, &str)]| {
        let cfg = experiment_on(dir.path(), name, &data, &with(CHAINED, more));
        let ran = train(&cfg, false, None);
        assert_trained(&ran, name);
        adapter_tensors(&cfg.output_dir())
    };
    let baseline = run("chained", &[]);
    for (name, key) in [
        ("skip", "augmentation.skip_parent_probability"),
        ("random", "augmentation.random_parent_probability"),
    ] {
        let diff = max_tensors_diff(&baseline, &run(name, &[(key, "0.5")]));
        assert!(diff > 1e-4, "{key} did not change the adapter ({diff})");
    }
    // All four at once.
    run(
        "all",
        &[
            ("augmentation.skip_parent_probability", "0.3"),
            ("augmentation.random_parent_probability", "0.3"),
            ("augmentation.token_mask_probability", "0.2"),
            ("augmentation.neftune_noise_alpha", "5"),
        ],
    );
}
