//! Bridges the caller's RNG (rand_core 0.6, the workspace's version, which `voprf` also
//! uses) to the rand_core 0.10 traits that `blind-rsa-signatures` 0.18 takes, so the
//! caller passes one RNG for both token types and this crate never reaches for the OS.

use blind_rsa_signatures::reexports::rsa::rand_core as rc10;
use core::convert::Infallible;

/// A rand_core 0.10 view of a rand_core 0.6 cryptographic RNG.
pub(crate) struct Bridge<'a, R: rand_core::RngCore + rand_core::CryptoRng>(pub(crate) &'a mut R);

impl<R: rand_core::RngCore + rand_core::CryptoRng> rc10::TryRng for Bridge<'_, R> {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.0.next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.0.next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}

// The wrapped RNG is itself a CryptoRng, so the bridge is one too.
impl<R: rand_core::RngCore + rand_core::CryptoRng> rc10::TryCryptoRng for Bridge<'_, R> {}
