//! The node's confidential GPU: where its evidence comes from, and how it is bound.
//!
//! A node that computes on a GPU attests it next to the CPU (ADR 0204):
//!
//! 1. the RA-TLS layer hands the attester REPORT_DATA whose first half is the SHA-256 of
//!    the new certificate key;
//! 2. the GPU is asked for its SPDM GET_MEASUREMENTS exchange with exactly that half as the
//!    nonce ([`GpuAttester`]: NVML on real hardware, the simulated H100 in CI);
//! 3. the CPU signs REPORT_DATA = key digest ‖ SHA-256(GPU evidence), and the evidence
//!    container carries both reports, so one certificate holds CPU and GPU evidence, each
//!    bound to the key and to each other.
//!
//! Clients then check the device chain to the pinned NVIDIA root, the SPDM signature, the
//! nonce, the CC mode and every measurement the release pins (`gpu.N` registers).
//!
//! [`SimFault`] reproduces what a hostile host could do to that chain of bindings, on the
//! simulated platforms only, so tests can show that clients catch each case.

use std::sync::Arc;

use confide_attest::{GpuAttester, GpuEvidence, PlatformError};
use confide_attest_sim::gpu::CcMode;
use confide_attest_sim::{SimulatedGpu, SimulatedGpuVendor};

use crate::Error;

/// Which GPU, if any, the node attests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpuChoice {
    /// No GPU: evidence carries the CPU report only.
    #[default]
    None,
    /// The simulated H100 (its vendor in `<sim-vendor>/gpu`); simulated platforms only.
    Simulated,
    /// A real NVIDIA confidential GPU through NVML, by index.
    Nvml(u32),
}

impl std::str::FromStr for GpuChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(GpuChoice::None),
            "simulated" | "sim" => Ok(GpuChoice::Simulated),
            "nvml" => Ok(GpuChoice::Nvml(0)),
            other => match other.strip_prefix("nvml:").map(str::parse::<u32>) {
                Some(Ok(i)) => Ok(GpuChoice::Nvml(i)),
                _ => Err(format!(
                    "unknown GPU {other:?}: use `simulated`, `nvml` or `nvml:INDEX`"
                )),
            },
        }
    }
}

/// Misbehaviour of a hostile host, reproduced on the simulated platforms so that tests
/// show clients refuse it. Each applies to the certificates the node serves, after its
/// own start-up checks passed (a host that tampers later, or a node binary that skips
/// its checks); real platforms refuse every fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimFault {
    /// Replay the GPU report gathered at start-up (its nonce belongs to no certificate).
    GpuStaleNonce,
    /// Carry GPU evidence other than the one the CPU report binds (from another
    /// certificate).
    GpuOtherCertificate,
    /// The GPU runs with confidential computing off (its report states no CC mode).
    GpuCcOff,
    /// The GPU reports a different value in this SPDM measurement block (other firmware).
    GpuMeasurement(u8),
}

impl std::str::FromStr for SimFault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gpu-stale-nonce" => Ok(SimFault::GpuStaleNonce),
            "gpu-other-certificate" => Ok(SimFault::GpuOtherCertificate),
            "gpu-cc-off" => Ok(SimFault::GpuCcOff),
            other => match other.strip_prefix("gpu-measurement:").map(str::parse::<u8>) {
                Some(Ok(i)) if i != 0 && i != 0xff => Ok(SimFault::GpuMeasurement(i)),
                _ => Err(format!(
                    "unknown fault {other:?}: gpu-stale-nonce, gpu-other-certificate, \
                     gpu-cc-off, gpu-measurement:INDEX (1..=254)"
                )),
            },
        }
    }
}

/// The honest GPU attester (for the node's own measurement) and the one its certificates
/// use (different only under a [`SimFault`]).
pub(crate) struct GpuAttesters {
    pub honest: Arc<dyn GpuAttester>,
    pub served: Arc<dyn GpuAttester>,
    /// Evidence to put in the container instead of what the CPU report binds.
    pub swap: Option<GpuEvidence>,
}

/// Opens the GPU named by `choice` (and `faults`, simulated only).
pub(crate) fn open(
    choice: GpuChoice,
    sim_vendor_dir: &std::path::Path,
    simulated_platform: bool,
    faults: &[SimFault],
) -> Result<Option<GpuAttesters>, Error> {
    if !faults.is_empty() && !simulated_platform {
        return Err(Error::Config(
            "fault injection exists on the simulated platforms only",
        ));
    }
    let honest: Arc<dyn GpuAttester> = match choice {
        GpuChoice::None => {
            if !faults.is_empty() {
                return Err(Error::Config("GPU faults need --gpu simulated"));
            }
            return Ok(None);
        }
        GpuChoice::Simulated => {
            if !simulated_platform {
                // A simulated GPU next to a hardware CPU would be refused by every client;
                // refuse it here, where the operator sees why.
                return Err(Error::Config(
                    "the simulated GPU runs on the simulated platforms only",
                ));
            }
            let vendor = SimulatedGpuVendor::load_or_create(&sim_vendor_dir.join("gpu"))
                .map_err(Error::SimulatedVendor)?;
            let mut served = SimulatedGpu::with_reference_measurements(vendor.clone());
            for f in faults {
                match *f {
                    SimFault::GpuCcOff => served = served.with_cc_mode(CcMode::Unstated),
                    SimFault::GpuMeasurement(i) => {
                        let mut v = served.measurements().get(&i).copied().unwrap_or([0; 48]);
                        v[0] ^= 0xff;
                        served = served.with_measurement(i, v);
                    }
                    SimFault::GpuStaleNonce | SimFault::GpuOtherCertificate => {}
                }
            }
            let honest = Arc::new(SimulatedGpu::with_reference_measurements(vendor));
            return Ok(Some(with_replays(honest, Arc::new(served), faults)?));
        }
        GpuChoice::Nvml(index) => {
            Arc::new(confide_attest_nvml::NvmlGpuAttester::open(index).map_err(Error::Gpu)?)
        }
    };
    Ok(Some(GpuAttesters {
        served: Arc::clone(&honest),
        honest,
        swap: None,
    }))
}

/// Applies the faults that reuse old evidence: both use the report gathered at start-up
/// (nonce of no certificate: all zeros).
fn with_replays(
    honest: Arc<dyn GpuAttester>,
    served: Arc<dyn GpuAttester>,
    faults: &[SimFault],
) -> Result<GpuAttesters, Error> {
    let old = || {
        honest
            .gpu_evidence(&[0; 32])
            .map_err(|_| Error::Attestation("the GPU did not produce a report"))
    };
    let mut out = GpuAttesters {
        honest: Arc::clone(&honest),
        served,
        swap: None,
    };
    if faults.contains(&SimFault::GpuStaleNonce) {
        out.served = Arc::new(Replay(old()?));
    }
    if faults.contains(&SimFault::GpuOtherCertificate) {
        out.swap = Some(old()?);
    }
    Ok(out)
}

/// A GPU that answers every request with the same old report.
struct Replay(GpuEvidence);

impl GpuAttester for Replay {
    fn gpu_evidence(&self, _nonce: &[u8; 32]) -> Result<GpuEvidence, PlatformError> {
        Ok(self.0.clone())
    }
}

/// The SPDM measurement blocks of the node's own GPU evidence, as `(index, value)`, for
/// the register list a release must pin. Parsing only: the node trusts its own GPU's
/// answer here, clients verify it.
pub(crate) fn measurements(ev: &GpuEvidence) -> Result<Vec<(u8, Vec<u8>)>, Error> {
    let m = confide_attest_nvidia::parse_spdm(&ev.spdm)
        .map_err(|_| Error::Attestation("the GPU's report does not parse"))?;
    Ok(m.blocks.into_iter().map(|b| (b.index, b.value)).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_ones_are_refused() {
        assert_eq!("sim".parse::<GpuChoice>().unwrap(), GpuChoice::Simulated);
        assert_eq!("nvml".parse::<GpuChoice>().unwrap(), GpuChoice::Nvml(0));
        assert_eq!("nvml:3".parse::<GpuChoice>().unwrap(), GpuChoice::Nvml(3));
        assert!("nvml:x".parse::<GpuChoice>().is_err());
        assert!("cuda".parse::<GpuChoice>().is_err());
        assert_eq!(
            "gpu-measurement:5".parse::<SimFault>().unwrap(),
            SimFault::GpuMeasurement(5)
        );
        assert!("gpu-measurement:0".parse::<SimFault>().is_err());
        assert!("gpu-melt".parse::<SimFault>().is_err());
    }

    #[test]
    fn faults_and_simulated_gpu_need_the_simulated_platform() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            open(GpuChoice::Simulated, dir.path(), false, &[]),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            open(GpuChoice::None, dir.path(), false, &[SimFault::GpuCcOff]),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            open(GpuChoice::None, dir.path(), true, &[SimFault::GpuCcOff]),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn faults_change_what_is_served_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let nonce = [7; 32];
        let g = open(GpuChoice::Simulated, dir.path(), true, &[])
            .unwrap()
            .unwrap();
        let honest = measurements(&g.honest.gpu_evidence(&nonce).unwrap()).unwrap();
        assert_eq!(
            measurements(&g.served.gpu_evidence(&nonce).unwrap()).unwrap(),
            honest
        );
        assert!(g.swap.is_none());

        let g = open(
            GpuChoice::Simulated,
            dir.path(),
            true,
            &[SimFault::GpuMeasurement(5)],
        )
        .unwrap()
        .unwrap();
        let served = measurements(&g.served.gpu_evidence(&nonce).unwrap()).unwrap();
        let differ: Vec<u8> = honest
            .iter()
            .zip(&served)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.0)
            .collect();
        assert_eq!(differ, vec![5]);

        let g = open(
            GpuChoice::Simulated,
            dir.path(),
            true,
            &[SimFault::GpuStaleNonce, SimFault::GpuOtherCertificate],
        )
        .unwrap()
        .unwrap();
        let a = g.served.gpu_evidence(&nonce).unwrap();
        let b = g.served.gpu_evidence(&[9; 32]).unwrap();
        assert_eq!(a, b, "a replaying GPU ignores the nonce");
        assert!(g.swap.is_some());
    }
}
