//! Optionality: AI features are off until the person turns them on.
//!
//! WhatsApp's Private Processing makes AI features optional. Here that is the SDK's rule,
//! not only the CLI's: [`crate::Client::summarize`] and [`crate::Client::suggest`] read
//! this state before anything else and return [`crate::Error::ConsentRequired`] unless
//! the person said yes, so an app that forgets to ask still sends nothing. Verification
//! (`Client::verify`) needs no consent: it sends no content.
//!
//! The state is one small JSON file beside the client's other state
//! (`[state] consent`, default `consent.json`):
//!
//! ```json
//! { "version": 1, "ai_features": true, "changed_at": 1796454000 }
//! ```
//!
//! A missing file means the person has not been asked. A file that does not parse is an
//! error, never "yes".

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::state::{read_json, write_json};

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentFile {
    version: u32,
    ai_features: bool,
    changed_at: u64,
}

/// The person's answer to "use AI features with private processing?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Consent {
    /// Never asked: AI features are off.
    NotAsked,
    /// Turned on at `at` (Unix seconds).
    Given {
        /// When.
        at: u64,
    },
    /// Turned off at `at` (Unix seconds).
    Withdrawn {
        /// When.
        at: u64,
    },
}

impl Consent {
    /// Read the consent state (a missing file: [`Consent::NotAsked`]).
    pub fn load(path: &Path) -> Result<Consent, Error> {
        let Some(f) = read_json::<ConsentFile>(path)? else {
            return Ok(Consent::NotAsked);
        };
        if f.version != VERSION {
            return Err(Error::State {
                path: path.to_owned(),
                detail: format!("unknown consent file version {}", f.version),
            });
        }
        Ok(if f.ai_features {
            Consent::Given { at: f.changed_at }
        } else {
            Consent::Withdrawn { at: f.changed_at }
        })
    }

    /// Record the person's answer at `now` (Unix seconds), crash-safely.
    pub fn record(path: &Path, ai_features: bool, now: u64) -> Result<Consent, Error> {
        write_json(
            path,
            &ConsentFile {
                version: VERSION,
                ai_features,
                changed_at: now,
            },
        )?;
        Consent::load(path)
    }

    /// Whether AI features may send anything.
    pub fn allows_ai(self) -> bool {
        matches!(self, Consent::Given { .. })
    }

    /// `Ok` if AI features are on, else [`Error::ConsentRequired`].
    pub fn require(self) -> Result<(), Error> {
        if self.allows_ai() {
            Ok(())
        } else {
            Err(Error::ConsentRequired {
                withdrawn: matches!(self, Consent::Withdrawn { .. }),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn absent_means_not_asked_and_answers_persist() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("consent.json");
        assert_eq!(Consent::load(&p).unwrap(), Consent::NotAsked);
        assert!(matches!(
            Consent::NotAsked.require(),
            Err(Error::ConsentRequired { withdrawn: false })
        ));
        assert_eq!(
            Consent::record(&p, true, 100).unwrap(),
            Consent::Given { at: 100 }
        );
        assert!(Consent::load(&p).unwrap().require().is_ok());
        Consent::record(&p, false, 200).unwrap();
        assert!(matches!(
            Consent::load(&p).unwrap().require(),
            Err(Error::ConsentRequired { withdrawn: true })
        ));
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_yes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("consent.json");
        for bad in [
            &b"{\"version\":1,\"ai_features\":tru"[..],
            b"{\"version\":2,\"ai_features\":true,\"changed_at\":1}",
            b"{\"version\":1,\"ai_features\":true,\"changed_at\":1,\"extra\":0}",
            b"yes",
        ] {
            std::fs::write(&p, bad).unwrap();
            assert!(
                matches!(Consent::load(&p), Err(Error::State { .. })),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
