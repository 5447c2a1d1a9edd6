//! What the client parses from the network: encapsulated responses, chunked responses
//! fed in arbitrary splits, and streamed Binary HTTP responses. Never panics.
#![no_main]

use confide_ohttp::bhttp::{Response, ResponseStream};
use confide_ohttp::{ClientRequest, KeyPair, SymmetricSuite};
use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = KeyPair::from_secret_bytes(1, &[7u8; 32], SymmetricSuite::defaults()) else {
        return;
    };
    let eph = Zeroizing::new([3u8; 32]);
    if let Ok((_, pending)) =
        ClientRequest::new(key.config()).and_then(|c| c.encapsulate_with_ephemeral(b"x", &eph))
    {
        let _ = pending.decapsulate(data);
    }
    let split = data.first().map_or(1, |b| usize::from(*b % 17) + 1);
    let mut rng = rand_core::OsRng;
    if let Ok((_, sealer)) =
        ClientRequest::new(key.config()).and_then(|c| c.encapsulate_chunked(&mut rng))
        && let Ok((_, pending)) = sealer.finish(b"x")
    {
        let mut opener = pending.decoder(1 << 16);
        let mut ok = true;
        for piece in data.chunks(split) {
            if opener.push(piece).is_err() {
                ok = false;
                break;
            }
        }
        if ok {
            let _ = opener.finish();
        }
    }
    let _ = Response::decode(data);
    let mut stream = ResponseStream::new(1 << 16);
    for piece in data.chunks(split) {
        if stream.push(piece).is_err() {
            return;
        }
    }
    let _ = stream.finish();
});
