//! One module per role. Each exposes its clap type and `async fn run(..) -> anyhow::Result<ExitCode>`.

pub mod bench;
pub mod client;
pub mod demo;
pub mod engine;
pub mod evidence;
pub mod gateway;
pub mod image;
pub mod issuer;
pub mod ledger;
pub mod measure;
pub mod monitor;
pub mod node;
pub mod privacy;
pub mod receipts;
pub mod relay;
pub mod release;
pub mod up;
pub mod wallet;
pub mod witness;

/// This source tree (where `examples/` and `models/` are), for the commands that use its
/// files: `$CONFIDE_SOURCE_TREE`, else the nearest directory above the running binary
/// (`target/release/confide`), else above the working directory, that holds both
/// `Cargo.lock` and `examples/chat-whatsapp.txt`.
///
/// Found at run time, never compiled in: a path from the build machine inside the binary
/// would make two builds of one revision in two directories differ
/// (`scripts/build-image --check`, docs/image.md).
pub fn source_tree() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("CONFIDE_SOURCE_TREE") {
        return Some(p.into());
    }
    let is_tree = |d: &std::path::Path| {
        d.join("Cargo.lock").is_file() && d.join("examples/chat-whatsapp.txt").is_file()
    };
    let from = |start: std::path::PathBuf| {
        start
            .ancestors()
            .find(|d| is_tree(d))
            .map(std::path::Path::to_owned)
    };
    std::env::current_exe()
        .and_then(|e| e.canonicalize())
        .ok()
        .and_then(from)
        .or_else(|| std::env::current_dir().ok().and_then(from))
}

/// A file or directory of the source tree, by its path inside it; `rel` as given (relative
/// to the working directory) when no tree is found, so the error that follows names it.
pub fn in_source_tree(rel: &str) -> std::path::PathBuf {
    source_tree().map_or_else(|| rel.into(), |t| t.join(rel))
}
