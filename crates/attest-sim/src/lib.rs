//! Simulated TEE platform: SEV-SNP-format evidence signed by a local simulated vendor chain.
