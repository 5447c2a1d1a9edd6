//! Intel TDX DCAP quote verifier.
