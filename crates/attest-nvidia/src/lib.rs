//! NVIDIA Hopper SPDM measurement verifier.
