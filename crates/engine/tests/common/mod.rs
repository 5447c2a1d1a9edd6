//! Shared helpers for tests that need the real model.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use confide_engine::{EmbeddedEngine, LoadOptions};

/// The model file: `$CONFIDE_MODEL`, or `<repo>/models/SmolLM2-135M-Instruct.Q4_1.gguf`.
/// Panics (fails the test) with instructions when it is missing: these tests are meant
/// to run against the real model, never to skip silently.
pub fn model_path() -> PathBuf {
    let path = std::env::var_os("CONFIDE_MODEL").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../models/SmolLM2-135M-Instruct.Q4_1.gguf"
            ))
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "model file {} is missing: run scripts/fetch-model (or set CONFIDE_MODEL)",
        path.display()
    );
    path
}

/// One engine per test binary (loading takes a moment; tests share it).
#[allow(dead_code)]
pub fn engine() -> Arc<EmbeddedEngine> {
    static ENGINE: OnceLock<Arc<EmbeddedEngine>> = OnceLock::new();
    Arc::clone(ENGINE.get_or_init(|| {
        Arc::new(EmbeddedEngine::load(&model_path(), &LoadOptions::default()).unwrap())
    }))
}
