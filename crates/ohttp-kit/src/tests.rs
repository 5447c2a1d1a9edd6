//! Known-answer, interoperability and negative tests.
#![allow(clippy::unwrap_used)]

use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::bhttp::{Fields, Request, Response, ResponseStream, StreamEvent};
use crate::hpke::{Aead, Kdf, Kem, Suite};
use crate::*;

/// The hex blocks of RFC 9458 Appendix A, in document order.
fn appendix_a() -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/ohttp/rfc9458-appendix-a.md"
    ))
    .unwrap();
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match (&mut cur, line.trim()) {
            (None, "~~~ hex-dump") => cur = Some(String::new()),
            (Some(s), "~~~") => {
                blocks.push(hex::decode(&*s).unwrap());
                cur = None;
            }
            (Some(s), l) => s.push_str(l),
            _ => {}
        }
    }
    assert_eq!(blocks.len(), 14, "the fixture has 14 hex blocks");
    blocks
}

fn rfc_server() -> (Server, KeyConfig) {
    let a = appendix_a();
    let suites = vec![
        SymmetricSuite::new(Kdf::HkdfSha256, Aead::Aes128Gcm),
        SymmetricSuite::new(Kdf::HkdfSha256, Aead::ChaCha20Poly1305),
    ];
    let kp = KeyPair::from_secret_bytes(1, &a[0], suites).unwrap();
    let cfg = kp.config().clone();
    (Server::new(vec![kp]).unwrap(), cfg)
}

#[test]
fn rfc9458_appendix_a_byte_for_byte() {
    let a = appendix_a();
    let (server, config) = rfc_server();
    // Key configuration from the raw secret key.
    assert_eq!(config.encode(), a[1]);
    assert_eq!(KeyConfig::decode(&a[1]).unwrap(), config);
    // Binary HTTP request.
    let req = Request::new("GET", "https", "example.com", "/");
    assert_eq!(req.encode(), a[2]);
    // The ephemeral public key, and the info string (label || 0 || hdr).
    let sk_e: [u8; 32] = a[3].clone().try_into().unwrap();
    let pk_e = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(sk_e));
    assert_eq!(pk_e.as_bytes().as_slice(), a[4]);
    let mut info = b"message/bhttp request\0".to_vec();
    info.extend_from_slice(&a[6][..7]);
    assert_eq!(info, a[5]);
    // Encapsulated request.
    let (enc_req, client_resp) = ClientRequest::new(&config)
        .unwrap()
        .encapsulate_with_ephemeral(&a[2], &Zeroizing::new(sk_e))
        .unwrap();
    assert_eq!(enc_req, a[6]);
    // Gateway side.
    let (pt, server_resp) = server.decapsulate(&a[6]).unwrap();
    assert_eq!(pt, a[2]);
    assert_eq!(Request::decode(&pt).unwrap(), req);
    // Response: the salt's tail is the response nonce.
    assert_eq!(Response::new(200).encode(), a[7]);
    assert_eq!(&a[9][..32], a[4].as_slice(), "salt = enc || nonce");
    let enc_resp = server_resp
        .encapsulate_with_nonce(&a[7], &a[9][32..])
        .unwrap();
    assert_eq!(enc_resp, a[13]);
    assert_eq!(client_resp.decapsulate(&a[13]).unwrap(), a[7]);
    assert_eq!(Response::decode(&a[7]).unwrap().status, 200);
}

#[test]
fn rfc9458_appendix_a_intermediate_values() {
    // The exported secret, PRK, key and nonce of the response (RFC 9458 §4.4).
    let a = appendix_a();
    let (server, _) = rfc_server();
    let (_, sr) = server.decapsulate(&a[6]).unwrap();
    assert_eq!(sr.secret.as_slice(), a[8]);
    let prk = Kdf::HkdfSha256.extract(&a[9], &a[8]);
    assert_eq!(prk.as_slice(), a[10]);
    assert_eq!(
        Kdf::HkdfSha256.expand(&prk, b"key", 16).unwrap().as_slice(),
        a[11]
    );
    assert_eq!(
        Kdf::HkdfSha256
            .expand(&prk, b"nonce", 12)
            .unwrap()
            .as_slice(),
        a[12]
    );
}

fn all_suites() -> Vec<SymmetricSuite> {
    let mut v = Vec::new();
    for kdf in [Kdf::HkdfSha256, Kdf::HkdfSha384, Kdf::HkdfSha512] {
        for aead in [Aead::Aes128Gcm, Aead::Aes256Gcm, Aead::ChaCha20Poly1305] {
            v.push(SymmetricSuite::new(kdf, aead));
        }
    }
    v
}

#[test]
fn roundtrip_every_suite() {
    let kp = KeyPair::generate(7, all_suites(), &mut OsRng).unwrap();
    let cfg = kp.config().clone();
    let server = Server::new(vec![kp]).unwrap();
    for s in all_suites() {
        let (enc, cr) = ClientRequest::with_suite(&cfg, s)
            .unwrap()
            .encapsulate(b"hello", &mut OsRng)
            .unwrap();
        let (pt, sr) = server.decapsulate(&enc).unwrap();
        assert_eq!(pt, b"hello");
        let resp = sr.encapsulate(b"world", &mut OsRng).unwrap();
        assert_eq!(cr.decapsulate(&resp).unwrap(), b"world");
    }
}

/// Interoperability with the independent `hpke` crate, both directions.
fn interop<A: ::hpke::aead::Aead, D: ::hpke::kdf::Kdf>(suite: Suite) {
    use ::hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
    type K = ::hpke::kem::X25519HkdfSha256;
    let mut rng = rand_core_09::UnwrapErr(rand_core_09::OsRng);
    let (sk, pk) = K::gen_keypair(&mut rng);
    let info = b"interop info";
    // Ours sends, theirs receives.
    let pk_bytes: [u8; 32] = pk.to_bytes().into();
    let sk_e = Zeroizing::new([0x42u8; 32]);
    let (enc, mut ctx) = crate::hpke::setup_base_s(suite, &pk_bytes, info, &sk_e).unwrap();
    let ct = ctx.seal(b"aad", b"plaintext one").unwrap();
    let ct2 = ctx.seal(b"", b"two").unwrap();
    let encapped = <K as ::hpke::Kem>::EncappedKey::from_bytes(&enc).unwrap();
    let mut theirs =
        ::hpke::setup_receiver::<A, D, K>(&OpModeR::Base, &sk, &encapped, info).unwrap();
    assert_eq!(theirs.open(&ct, b"aad").unwrap(), b"plaintext one");
    assert_eq!(theirs.open(&ct2, b"").unwrap(), b"two");
    let mut exp = [0u8; 40];
    theirs.export(b"ctx", &mut exp).unwrap();
    assert_eq!(ctx.export(b"ctx", 40).unwrap().as_slice(), exp);
    // Theirs sends, ours receives.
    let (encapped, mut sender) =
        ::hpke::setup_sender::<A, D, K, _>(&OpModeS::Base, &pk, info, &mut rng).unwrap();
    let ct = sender.seal(b"from them", b"x").unwrap();
    let sk_ours = x25519_dalek::StaticSecret::from(<[u8; 32]>::from(sk.to_bytes()));
    let enc: [u8; 32] = encapped.to_bytes().into();
    let mut ours = crate::hpke::setup_base_r(suite, &sk_ours, &enc, info).unwrap();
    assert_eq!(ours.open(b"x", &ct).unwrap(), b"from them");
}

#[test]
fn interoperates_with_the_hpke_crate_for_every_kdf_and_aead() {
    use ::hpke::aead::{AesGcm128, AesGcm256, ChaCha20Poly1305};
    use ::hpke::kdf::{HkdfSha256, HkdfSha384, HkdfSha512};
    let s = |kdf, aead| Suite {
        kem: Kem::X25519HkdfSha256,
        kdf,
        aead,
    };
    interop::<AesGcm128, HkdfSha256>(s(Kdf::HkdfSha256, Aead::Aes128Gcm));
    interop::<AesGcm256, HkdfSha256>(s(Kdf::HkdfSha256, Aead::Aes256Gcm));
    interop::<ChaCha20Poly1305, HkdfSha256>(s(Kdf::HkdfSha256, Aead::ChaCha20Poly1305));
    interop::<AesGcm128, HkdfSha384>(s(Kdf::HkdfSha384, Aead::Aes128Gcm));
    interop::<AesGcm256, HkdfSha384>(s(Kdf::HkdfSha384, Aead::Aes256Gcm));
    interop::<ChaCha20Poly1305, HkdfSha384>(s(Kdf::HkdfSha384, Aead::ChaCha20Poly1305));
    interop::<AesGcm128, HkdfSha512>(s(Kdf::HkdfSha512, Aead::Aes128Gcm));
    interop::<AesGcm256, HkdfSha512>(s(Kdf::HkdfSha512, Aead::Aes256Gcm));
    interop::<ChaCha20Poly1305, HkdfSha512>(s(Kdf::HkdfSha512, Aead::ChaCha20Poly1305));
}

#[test]
fn unknown_key_id_is_reported_as_such() {
    let a = appendix_a();
    let (server, _) = rfc_server();
    let mut m = a[6].clone();
    m[0] = 9;
    assert_eq!(server.decapsulate(&m).unwrap_err(), Error::UnknownKeyId(9));
}

#[test]
fn wrong_kem_kdf_aead_are_each_named() {
    let a = appendix_a();
    let (server, _) = rfc_server();
    let with = |i: usize, v: u16| {
        let mut m = a[6].clone();
        m[i..i + 2].copy_from_slice(&v.to_be_bytes());
        server.decapsulate(&m).unwrap_err()
    };
    assert_eq!(with(1, 0x0010), Error::UnsupportedKem(0x0010));
    assert_eq!(with(3, 0x0009), Error::UnsupportedKdf(0x0009));
    assert_eq!(with(5, 0x0009), Error::UnsupportedAead(0x0009));
    // Known algorithms the key does not offer.
    assert_eq!(with(3, 0x0002), Error::SuiteNotOffered);
    assert_eq!(with(5, 0x0002), Error::SuiteNotOffered);
    // A client asked for a pair the config does not offer.
    let (_, cfg) = rfc_server();
    assert_eq!(
        ClientRequest::with_suite(&cfg, SymmetricSuite::new(Kdf::HkdfSha512, Aead::Aes128Gcm))
            .unwrap_err(),
        Error::SuiteNotOffered
    );
}

#[test]
fn truncation_at_every_boundary_fails_closed() {
    let a = appendix_a();
    let (server, _) = rfc_server();
    for n in 0..a[6].len() {
        let e = server.decapsulate(&a[6][..n]).unwrap_err();
        assert!(
            matches!(e, Error::Truncated(_) | Error::Decrypt),
            "prefix {n}: {e:?}"
        );
    }
    for n in 0..a[13].len() {
        let (_, cr) = ClientRequest::new(&rfc_server().1)
            .unwrap()
            .encapsulate_with_ephemeral(&a[2], &Zeroizing::new(a[3].clone().try_into().unwrap()))
            .unwrap();
        assert!(cr.decapsulate(&a[13][..n]).is_err(), "response prefix {n}");
    }
}

#[test]
fn tampering_any_byte_fails_closed() {
    let a = appendix_a();
    let (server, _) = rfc_server();
    for i in 0..a[6].len() {
        let mut m = a[6].clone();
        m[i] ^= 0x01;
        assert!(
            server.decapsulate(&m).is_err(),
            "flipped byte {i} was accepted"
        );
    }
    let sk_e: [u8; 32] = a[3].clone().try_into().unwrap();
    for i in 0..a[13].len() {
        let (_, cr) = ClientRequest::new(&rfc_server().1)
            .unwrap()
            .encapsulate_with_ephemeral(&a[2], &Zeroizing::new(sk_e))
            .unwrap();
        let mut m = a[13].clone();
        m[i] ^= 0x80;
        assert_eq!(
            cr.decapsulate(&m).unwrap_err(),
            Error::Decrypt,
            "flipped response byte {i}"
        );
    }
}

#[test]
fn small_order_encapsulated_key_is_rejected() {
    let a = appendix_a();
    let (server, _) = rfc_server();
    let mut m = a[6].clone();
    m[7..39].fill(0); // the all-zero point has small order
    assert_eq!(server.decapsulate(&m).unwrap_err(), Error::InvalidPublicKey);
}

#[test]
fn key_config_list_and_rotation() {
    let k1 = KeyPair::generate(1, SymmetricSuite::defaults(), &mut OsRng).unwrap();
    let k2 = KeyPair::generate(2, SymmetricSuite::defaults(), &mut OsRng).unwrap();
    let server = Server::new(vec![k1.clone(), k2.clone()]).unwrap();
    let list = KeyConfig::encode_list(&server.configs());
    let got = KeyConfig::decode_list(&list).unwrap();
    assert_eq!(got, vec![k1.config().clone(), k2.config().clone()]);
    for cfg in &got {
        let (enc, _) = ClientRequest::new(cfg)
            .unwrap()
            .encapsulate(b"x", &mut OsRng)
            .unwrap();
        assert_eq!(server.decapsulate(&enc).unwrap().0, b"x");
    }
    // Duplicate ids refused; truncated lists refused; an unknown KEM entry is skipped.
    assert!(Server::new(vec![k1.clone(), k1.clone()]).is_err());
    assert!(KeyConfig::decode_list(&list[..list.len() - 1]).is_err());
    let mut odd = vec![0, 5, 3, 0x00, 0x10, 0, 0];
    odd.extend_from_slice(&list);
    assert_eq!(KeyConfig::decode_list(&odd).unwrap().len(), 2);
    assert!(KeyConfig::decode_list(&[]).is_err());
    assert!(format!("{k1:?}").contains("<opaque>"));
}

#[test]
fn chunked_request_and_streamed_response() {
    let kp = KeyPair::generate(3, SymmetricSuite::defaults(), &mut OsRng).unwrap();
    let cfg = kp.config().clone();
    let server = Server::new(vec![kp]).unwrap();
    for s in SymmetricSuite::defaults() {
        let (mut wire, mut sealer) = ClientRequest::with_suite(&cfg, s)
            .unwrap()
            .encapsulate_chunked(&mut OsRng)
            .unwrap();
        wire.extend(sealer.seal_chunk(b"part one, ").unwrap());
        wire.extend(sealer.seal_chunk(b"part two, ").unwrap());
        let (last, client) = sealer.finish(b"end").unwrap();
        wire.extend(last);
        let (pt, sr) = server.decapsulate_chunked(&wire).unwrap();
        assert_eq!(pt, b"part one, part two, end");
        // A request missing its final chunk is refused.
        let cut = wire.len() - 20;
        assert!(server.decapsulate_chunked(&wire[..cut]).is_err());

        let (nonce, mut cs) = sr.start(&mut OsRng).unwrap();
        let mut resp = nonce;
        resp.extend(cs.seal(b"alpha ", false).unwrap());
        resp.extend(cs.seal(b"beta ", false).unwrap());
        resp.extend(cs.seal(b"omega", true).unwrap());
        assert!(cs.seal(b"more", true).is_err());
        // Feed byte by byte: chunks come out as soon as they are complete.
        let mut dec = client.decoder(1 << 16);
        let mut got = Vec::new();
        for b in &resp {
            for c in dec.push(std::slice::from_ref(b)).unwrap() {
                got.extend(c);
            }
        }
        got.extend(dec.finish().unwrap());
        assert_eq!(got, b"alpha beta omega");
    }
}

#[test]
fn chunked_response_truncation_and_reordering_are_detected() {
    let kp = KeyPair::generate(3, SymmetricSuite::defaults(), &mut OsRng).unwrap();
    let server = Server::new(vec![kp.clone()]).unwrap();
    let make = || {
        let (mut wire, sealer) = ClientRequest::new(kp.config())
            .unwrap()
            .encapsulate_chunked(&mut OsRng)
            .unwrap();
        let (last, client) = sealer.finish(b"q").unwrap();
        wire.extend(last);
        let (_, sr) = server.decapsulate_chunked(&wire).unwrap();
        let (nonce, mut cs) = sr.start(&mut OsRng).unwrap();
        let a = cs.seal(b"first", false).unwrap();
        let b = cs.seal(b"second", false).unwrap();
        let f = cs.seal(b"final", true).unwrap();
        (client, nonce, a, b, f)
    };
    // Dropping the final chunk: the stream ends without it.
    let (client, nonce, a, b, _) = make();
    let mut dec = client.decoder(1 << 16);
    dec.push(&[nonce, a, b].concat()).unwrap();
    assert_eq!(
        dec.finish().unwrap_err(),
        Error::Chunk("stream ended without the final chunk")
    );
    // Swapping two chunks breaks the counter nonce.
    let (client, nonce, a, b, f) = make();
    let mut dec = client.decoder(1 << 16);
    assert_eq!(
        dec.push(&[nonce, b, a, f].concat()).unwrap_err(),
        Error::Decrypt
    );
    // Presenting a non-final chunk as final fails (AAD "final").
    let (client, nonce, a, _, _) = make();
    let mut dec = client.decoder(1 << 16);
    let mut fake = vec![0u8];
    fake.extend_from_slice(&a[1..]);
    dec.push(&[nonce, fake].concat()).unwrap();
    assert_eq!(dec.finish().unwrap_err(), Error::Decrypt);
    // An oversized chunk length is refused before buffering it.
    let (client, nonce, _, _, _) = make();
    let mut dec = client.decoder(64);
    assert!(matches!(
        dec.push(&[nonce, vec![0x80, 0x01, 0, 0]].concat()),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn bhttp_known_length_roundtrip_and_rejections() {
    let mut req = Request::new("POST", "https", "gateway.example", "/v1/sessions?x=1");
    req.headers
        .append("Authorization", b"PrivateToken token=abc".to_vec());
    req.headers
        .append("content-type", b"application/json".to_vec());
    req.content = b"{\"a\":1}".to_vec();
    let enc = req.encode();
    assert_eq!(Request::decode(&enc).unwrap(), req);
    // Padding allowed, garbage after the message not.
    let mut padded = enc.clone();
    padded.extend_from_slice(&[0, 0, 0]);
    assert_eq!(Request::decode(&padded).unwrap(), req);
    let mut junk = enc.clone();
    junk.push(1);
    assert!(Request::decode(&junk).is_err());
    // Every truncation inside a section fails or decodes as a prefix that RFC 9292 §3.8
    // allows; it never panics.
    for n in 0..enc.len() {
        let _ = Request::decode(&enc[..n]);
    }
    // Uppercase names and a response framing indicator are refused.
    let mut upper = enc.clone();
    let pos = upper
        .windows(13)
        .position(|w| w == b"authorization")
        .unwrap();
    upper[pos] = b'A';
    assert_eq!(
        Request::decode(&upper).unwrap_err(),
        Error::Bhttp("uppercase field name")
    );
    assert!(Request::decode(&Response::new(200).encode()).is_err());
    let mut resp = Response::new(503);
    resp.headers
        .append("content-type", b"application/problem+json".to_vec());
    resp.content = b"{}".to_vec();
    assert_eq!(Response::decode(&resp.encode()).unwrap(), resp);
    assert!(
        Response::decode(&[1, 0x40, 0x32]).is_err(),
        "status 50 is out of range"
    );
}

#[test]
fn bhttp_indeterminate_stream() {
    let mut h = Fields::new();
    h.append("content-type", b"text/event-stream".to_vec());
    let mut wire = Response::encode_stream_head(200, &h);
    wire.extend(bhttp::encode_stream_chunk(b"tok1 "));
    wire.extend(bhttp::encode_stream_chunk(b""));
    wire.extend(bhttp::encode_stream_chunk(b"tok2"));
    wire.extend(bhttp::encode_stream_end(&Fields::new()));
    let whole = Response::decode(&wire).unwrap();
    assert_eq!(whole.content, b"tok1 tok2");
    let mut s = ResponseStream::new(1 << 16);
    let mut events = Vec::new();
    for b in &wire {
        events.extend(s.push(std::slice::from_ref(b)).unwrap());
    }
    events.extend(s.finish().unwrap());
    assert_eq!(
        events,
        vec![
            StreamEvent::Head {
                status: 200,
                headers: h
            },
            StreamEvent::Data(b"tok1 ".to_vec()),
            StreamEvent::Data(b"tok2".to_vec()),
            StreamEvent::End(Fields::new()),
        ]
    );
    // Cut inside the content: not complete.
    let mut s = ResponseStream::new(1 << 16);
    s.push(&wire[..wire.len() - 4]).unwrap();
    assert!(s.finish().is_err());
}

fn field_name() -> impl proptest::strategy::Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,15}"
}

fn fields() -> impl proptest::strategy::Strategy<Value = Fields> {
    use proptest::prelude::*;
    proptest::collection::vec(
        (field_name(), proptest::collection::vec(0x20u8..0x7f, 0..24)),
        0..5,
    )
    .prop_map(|v| {
        let mut f = Fields::new();
        for (n, val) in v {
            f.append(&n, val);
        }
        f
    })
}

proptest::proptest! {
    #[test]
    fn bhttp_request_roundtrip(
        method in "[A-Z]{1,7}",
        path in "/[a-z0-9/?=&]{0,30}",
        headers in fields(),
        content in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        trailers in fields(),
    ) {
        let mut r = Request::new(&method, "https", "gateway.example", &path);
        r.headers = headers;
        r.content = content;
        r.trailers = trailers;
        proptest::prop_assert_eq!(Request::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn streamed_response_equals_whole_decode_at_any_split(
        status in 200u16..600,
        headers in fields(),
        pieces in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..40), 0..5),
        trailers in fields(),
        split in 1usize..17,
    ) {
        let mut wire = Response::encode_stream_head(status, &headers);
        for p in &pieces {
            wire.extend(bhttp::encode_stream_chunk(p));
        }
        wire.extend(bhttp::encode_stream_end(&trailers));
        let whole = Response::decode(&wire).unwrap();
        proptest::prop_assert_eq!(&whole.content, &pieces.concat());
        let mut s = ResponseStream::new(1 << 16);
        let mut events = Vec::new();
        for piece in wire.chunks(split) {
            events.extend(s.push(piece).unwrap());
        }
        events.extend(s.finish().unwrap());
        let mut content = Vec::new();
        for e in &events {
            if let StreamEvent::Data(d) = e {
                content.extend_from_slice(d);
            }
        }
        proptest::prop_assert_eq!(content, whole.content);
        proptest::prop_assert_eq!(events.first(), Some(&StreamEvent::Head { status, headers: whole.headers }));
        proptest::prop_assert_eq!(events.last(), Some(&StreamEvent::End(whole.trailers)));
    }

    #[test]
    fn decoders_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let _ = Request::decode(&data);
        let _ = Response::decode(&data);
        let _ = KeyConfig::decode_list(&data);
        let mut s = ResponseStream::new(1 << 12);
        if s.push(&data).is_ok() {
            let _ = s.finish();
        }
    }
}
