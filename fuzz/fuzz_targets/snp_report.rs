//! SEV-SNP report parser (`sev` decoding plus our structural checks): never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = confide_attest_snp::parse_report(data);
    let _ = confide_attest_snp::unverified_report_data(data);
    // Pad/cut to the report length so the fuzzer explores fields, not the length check.
    let mut buf = [0u8; confide_attest_snp::REPORT_LEN];
    let n = data.len().min(buf.len());
    buf[..n].copy_from_slice(&data[..n]);
    if let Ok(r) = confide_attest_snp::parse_report(&buf) {
        assert!((2..=5).contains(&r.version));
    }
});
