//! What the gateway parses from the network: encapsulated requests (plain and chunked)
//! under a fixed key, the inner Binary HTTP request, and key-config lists. Never
//! panics; a decoded key-config list re-encodes to a list that decodes the same.
#![no_main]

use confide_ohttp::bhttp::Request;
use confide_ohttp::{KeyConfig, KeyPair, Server, SymmetricSuite};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = KeyPair::from_secret_bytes(1, &[7u8; 32], SymmetricSuite::defaults()) else {
        return;
    };
    let Ok(server) = Server::new(vec![key]) else {
        return;
    };
    let _ = server.decapsulate(data);
    let _ = server.decapsulate_chunked(data);
    let _ = Request::decode(data);
    if let Ok(list) = KeyConfig::decode_list(data) {
        assert_eq!(
            KeyConfig::decode_list(&KeyConfig::encode_list(&list)).ok(),
            Some(list)
        );
    }
    let _ = KeyConfig::decode(data);
});
