//! What a training run reports while it runs: one stream of [`Event`]s (declared with the run folder's formats
//! in `ferrotune-home`) that the terminal progress bar, the metrics file, the registry and the GUI's live
//! charts all consume.

pub use ferrotune_home::Event;

/// Receives events (a closure works).
pub trait Listener {
    fn on_event(&mut self, event: &Event);
}

impl<F: FnMut(&Event)> Listener for F {
    fn on_event(&mut self, event: &Event) {
        self(event)
    }
}
