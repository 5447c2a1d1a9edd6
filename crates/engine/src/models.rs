//! The models Confide ships by name, with the digests `scripts/fetch-model` pins.
//!
//! A name is only a shorthand for a file and its SHA-256: the node measures whatever
//! file it loads and the ledger lists that digest, so trust never rests on the name.
//! Where each file comes from and under which licence: `models/README.md`.

use std::path::{Path, PathBuf};

/// A model known by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedModel {
    /// The name on the command line (`--model quality`).
    pub name: &'static str,
    /// File name in the models directory.
    pub file: &'static str,
    /// SHA-256 of the file (lowercase hex).
    pub sha256: &'static str,
    /// One line for `--help` and errors.
    pub about: &'static str,
}

impl NamedModel {
    /// The file's path in `dir`.
    pub fn path_in(&self, dir: &Path) -> PathBuf {
        dir.join(self.file)
    }

    /// The digest as bytes.
    pub fn digest(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        // The constants below are 64 hex digits; a unit test checks each one.
        if let Ok(v) = hex::decode(self.sha256) {
            out.copy_from_slice(&v);
        }
        out
    }
}

/// Qwen2.5-Coder-1.5B-Instruct, Q4_K_M: the default for `confide demo` and `up`. Gets the
/// facts of a chat right.
pub const QUALITY: NamedModel = NamedModel {
    name: "quality",
    file: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    about: "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB; the default)",
};

/// Qwen2.5-Coder-0.5B-Instruct, Q4_K_M: about 2.5 times faster, less exact.
pub const FAST: NamedModel = NamedModel {
    name: "fast",
    file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    about: "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (490 MB; faster, less exact)",
};

/// SmolLM2-135M-Instruct, Q4_1: for tests whose subject is the plumbing. It writes
/// fluent text and invents facts.
pub const TINY: NamedModel = NamedModel {
    name: "tiny",
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    about: "SmolLM2-135M-Instruct Q4_1 (90 MB; plumbing tests only, invents facts)",
};

/// Every named model.
pub const ALL: [NamedModel; 3] = [QUALITY, FAST, TINY];

/// The named model called `name`.
pub fn by_name(name: &str) -> Option<NamedModel> {
    ALL.into_iter().find(|m| m.name == name)
}

/// What `--model` names: a known model (resolved in `dir`) or a path.
pub fn resolve(spec: &str, dir: &Path) -> PathBuf {
    match by_name(spec) {
        Some(m) => m.path_in(dir),
        None => PathBuf::from(spec),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_well_formed_and_names_resolve() {
        for m in ALL {
            assert_eq!(hex::decode(m.sha256).unwrap().len(), 32, "{}", m.name);
            assert_eq!(hex::encode(m.digest()), m.sha256);
            assert_eq!(
                resolve(m.name, Path::new("/m")),
                Path::new("/m").join(m.file)
            );
        }
        assert_eq!(resolve("./x.gguf", Path::new("/m")), Path::new("./x.gguf"));
        assert!(by_name("huge").is_none());
    }
}
