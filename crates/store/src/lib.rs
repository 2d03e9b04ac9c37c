//! ferrotune-store (skeleton).
