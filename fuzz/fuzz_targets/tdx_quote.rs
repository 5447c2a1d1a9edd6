//! TDX quote parser (our header checks + dcap-qvl's decoder), and the named registers the
//! ledger comparison reads from a report (MRTD, RTMR0..3; MEASUREMENT, POLICY): never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = confide_attest_tdx::parse_quote(data);
    // Also with a valid v4 TDX header, so the body decoder is reached.
    let mut q = Vec::with_capacity(data.len() + 48);
    q.extend_from_slice(&[4, 0, 2, 0, 0x81, 0, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(&confide_attest_tdx::INTEL_QE_VENDOR_ID);
    q.extend_from_slice(&[0u8; 20]);
    q.extend_from_slice(data);
    let _ = confide_attest_tdx::parse_quote(&q);
    for platform in ["tdx", "simulated-tdx", "sev-snp", "simulated", "nvidia"] {
        if let Ok(regs) = confide_verify::registers(platform, data, None) {
            // Every register is a 48-byte field (8 for POLICY) read from inside the report.
            assert!(
                regs.iter()
                    .all(|r| r.value.len() <= 48 && r.value.len() <= data.len())
            );
        }
    }
});
