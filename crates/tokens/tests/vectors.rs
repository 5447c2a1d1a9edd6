//! Published test vectors: RFC 9497 (VOPRF P-384), RFC 9474 (blind RSA, all four
//! variants), RFC 9578 issuance (types 0x0001 and 0x0002) and RFC 9577 tokens.
#![allow(clippy::unwrap_used)]

use confide_tokens::rsa_token::{RsaPublicKey, RsaSecretKey};
use confide_tokens::voprf_token::{VoprfPublicKey, VoprfSecretKey};
use confide_tokens::{Token, TokenChallenge, TokenType};
use p384::NistP384;
use serde_json::Value;
use sha2::{Digest, Sha256};
use voprf::{BlindedElement, Group, VoprfClient, VoprfServer};

fn load(rel: &str) -> Value {
    let path = format!("{}/../../testdata/{rel}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn hx(v: &Value) -> Vec<u8> {
    let s = v.as_str().unwrap();
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.len() % 2 == 1 {
        hex::decode(format!("0{s}")).unwrap()
    } else {
        hex::decode(s).unwrap()
    }
}

/// Replays fixed byte strings, one per `fill_bytes` call, so the vectors' "random"
/// values (blinds, salts, proof nonces) are what the code draws.
struct Replay(Vec<Vec<u8>>);
impl rand_core::RngCore for Replay {
    fn next_u32(&mut self) -> u32 {
        panic!("vector RNG: next_u32 not expected")
    }
    fn next_u64(&mut self) -> u64 {
        panic!("vector RNG: next_u64 not expected")
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        let next = self.0.remove(0);
        assert_eq!(next.len(), dst.len(), "vector RNG: length of draw");
        dst.copy_from_slice(&next);
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dst);
        Ok(())
    }
}
impl rand_core::CryptoRng for Replay {}

#[test]
fn rfc9497_voprf_p384_sha384() {
    let all = load("voprf/rfc9497-vectors.json");
    let suite = all
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["identifier"] == "P384-SHA384" && s["mode"] == 1)
        .unwrap();
    // DeriveKeyPair(seed, info) gives skSm / pkSm (RFC 9497 §3.2.1).
    let derived =
        VoprfServer::<NistP384>::new_from_seed(&hx(&suite["seed"]), &hx(&suite["keyInfo"]))
            .unwrap();
    let sk = hx(&suite["skSm"]);
    assert_eq!(&derived.serialize()[..48], sk.as_slice());
    let key = VoprfSecretKey::from_bytes(&sk).unwrap();
    assert_eq!(key.public_key().as_bytes(), hx(&suite["pkSm"]).as_slice());
    let server = VoprfServer::<NistP384>::new_with_key(&sk).unwrap();
    let pk = NistP384::deserialize_elem(&hx(&suite["pkSm"])).unwrap();

    let mut ran = 0;
    for v in suite["vectors"].as_array().unwrap() {
        if v["Batch"] != 1 {
            continue; // Confide issues one token per request; batched DLEQ is not used.
        }
        let input = hx(&v["Input"]);
        let blind = NistP384::deserialize_scalar(&hx(&v["Blind"])).unwrap();
        let client = VoprfClient::<NistP384>::deterministic_blind_unchecked(&input, blind).unwrap();
        assert_eq!(
            client.message.serialize().as_slice(),
            hx(&v["BlindedElement"]).as_slice()
        );
        let blinded = BlindedElement::<NistP384>::deserialize(&hx(&v["BlindedElement"])).unwrap();
        let mut rng = Replay(vec![hx(&v["Proof"]["r"])]);
        let eval = server.blind_evaluate(&mut rng, &blinded);
        assert_eq!(
            eval.message.serialize().as_slice(),
            hx(&v["EvaluationElement"]).as_slice()
        );
        assert_eq!(
            eval.proof.serialize().as_slice(),
            hx(&v["Proof"]["proof"]).as_slice()
        );
        let out = client
            .state
            .finalize(&input, &eval.message, &eval.proof, pk)
            .unwrap();
        assert_eq!(out.as_slice(), hx(&v["Output"]).as_slice());
        assert_eq!(
            server.evaluate(&input).unwrap().as_slice(),
            hx(&v["Output"]).as_slice()
        );
        ran += 1;
    }
    assert_eq!(ran, 2);
}

#[test]
fn rfc9474_blind_rsa_all_variants() {
    use blind_rsa_signatures::reexports::rsa::{BoxedUint, RsaPrivateKey};
    use blind_rsa_signatures::{
        BlindSignature, Deterministic, HashAlgorithm, MessagePrepare, PSS, PSSZero, Randomized,
        SaltMode, SecretKey, Sha384,
    };

    struct Replay10(Vec<Vec<u8>>);
    use blind_rsa_signatures::reexports::rsa::rand_core as rc10;
    impl rc10::TryRng for Replay10 {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            panic!("unexpected")
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            panic!("unexpected")
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            let next = self.0.remove(0);
            dst.copy_from_slice(&next[..dst.len()]);
            Ok(())
        }
    }
    impl rc10::TryCryptoRng for Replay10 {}

    fn run<H: HashAlgorithm, S: SaltMode, M: MessagePrepare>(v: &Value) {
        let uint = |k: &str| {
            let b = hx(&v[k]);
            BoxedUint::from_be_slice_vartime(&b)
        };
        let n = uint("n");
        let inner = RsaPrivateKey::from_components(
            n.clone(),
            uint("e"),
            uint("d"),
            vec![uint("p"), uint("q")],
        )
        .unwrap();
        let sk = SecretKey::<H, S, M>::new(inner);
        let pk = sk.public_key().unwrap();
        // The library draws the blind r and returns r^-1; the vector gives inv = r^-1.
        let inv = BoxedUint::from_be_slice(&hx(&v["inv"]), n.bits_precision()).unwrap();
        let r = inv.invert_mod(&n.to_nz().unwrap()).unwrap();
        let mut draws = Vec::new();
        if M::RANDOMIZE {
            draws.push(hx(&v["msg_prefix"]));
        }
        draws.push(hx(&v["salt"]));
        draws.push(r.to_le_bytes().to_vec());
        let msg = hx(&v["msg"]);
        let blinded = pk.blind(&mut Replay10(draws), &msg).unwrap();
        assert_eq!(
            blinded.blind_message.0,
            hx(&v["blinded_msg"]),
            "{}",
            v["name"]
        );
        let blind_sig = sk.blind_sign(&blinded.blind_message).unwrap();
        assert_eq!(blind_sig.0, hx(&v["blind_sig"]), "{}", v["name"]);
        let sig = pk
            .finalize(&BlindSignature(blind_sig.0.clone()), &blinded, &msg)
            .unwrap();
        assert_eq!(sig.0, hx(&v["sig"]), "{}", v["name"]);
        pk.verify(&sig, blinded.msg_randomizer, &msg).unwrap();
    }

    let all = load("blind-rsa/test_vectors_rfc9474.json");
    let vs = all.as_array().unwrap();
    assert_eq!(vs.len(), 4);
    for v in vs {
        match v["name"].as_str().unwrap() {
            "RSABSSA-SHA384-PSS-Randomized" => run::<Sha384, PSS, Randomized>(v),
            "RSABSSA-SHA384-PSSZERO-Randomized" => run::<Sha384, PSSZero, Randomized>(v),
            "RSABSSA-SHA384-PSS-Deterministic" => run::<Sha384, PSS, Deterministic>(v),
            "RSABSSA-SHA384-PSSZERO-Deterministic" => run::<Sha384, PSSZero, Deterministic>(v),
            other => panic!("unexpected variant {other}"),
        }
    }
}

#[test]
fn rfc9578_type1_issuance() {
    let all = load("privacypass/type1-issuance-test-vectors.json");
    let vs = all.as_array().unwrap();
    assert!(!vs.is_empty());
    for v in vs {
        let sk = VoprfSecretKey::from_bytes(&hx(&v["skS"])).unwrap();
        let pk = VoprfPublicKey::from_bytes(&hx(&v["pkS"])).unwrap();
        assert_eq!(&sk.public_key(), &pk);
        let challenge_bytes = hx(&v["token_challenge"]);
        let challenge = TokenChallenge::decode(&challenge_bytes).unwrap();
        assert_eq!(challenge.encode(), challenge_bytes);
        let digest = challenge.digest();
        assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(&challenge_bytes)));
        let nonce: [u8; 32] = hx(&v["nonce"]).try_into().unwrap();

        // Client: blind exactly as the vector did.
        let mut input = vec![0x00, 0x01];
        input.extend_from_slice(&nonce);
        input.extend_from_slice(&digest);
        input.extend_from_slice(pk.key_id());
        let blind = NistP384::deserialize_scalar(&hx(&v["blind"])).unwrap();
        let blinded =
            VoprfClient::<NistP384>::deterministic_blind_unchecked(&input, blind).unwrap();
        let (request, pending) = pk.begin_deterministic(nonce, digest, blinded).unwrap();
        assert_eq!(request.encode(), hx(&v["token_request"]));

        // The vector's response (its DLEQ proof) verifies and yields the vector's token.
        let want_token = hx(&v["token"]);
        let token = confide_tokens::PendingToken::Voprf(pending)
            .finalize(&hx(&v["token_response"]))
            .unwrap();
        assert_eq!(token.encode(), want_token);
        sk.verify(&Token::decode(&want_token).unwrap()).unwrap();

        // Our issuer's response (fresh proof randomness) yields the same token.
        let blinded =
            VoprfClient::<NistP384>::deterministic_blind_unchecked(&input, blind).unwrap();
        let (request, pending) = pk.begin_deterministic(nonce, digest, blinded).unwrap();
        let response = sk.issue(&request, &mut rand::rngs::OsRng).unwrap();
        assert_eq!(pending.finalize(&response).unwrap().encode(), want_token);
    }
}

#[test]
fn rfc9578_type2_issuance() {
    let all = load("privacypass/type2-issuance-test-vectors.json");
    let vs = all.as_array().unwrap();
    assert!(!vs.is_empty());
    for v in vs {
        let pem = String::from_utf8(hx(&v["skS"])).unwrap();
        let sk = RsaSecretKey::from_pem(&pem).unwrap();
        let pk = RsaPublicKey::from_spki(&hx(&v["pkS"])).unwrap();
        assert_eq!(sk.public_key(), &pk);
        assert_eq!(pk.spki(), hx(&v["pkS"]).as_slice());
        let challenge_bytes = hx(&v["token_challenge"]);
        let challenge = TokenChallenge::decode(&challenge_bytes).unwrap();
        assert_eq!(challenge.token_type(), 2);
        let digest = challenge.digest();
        let nonce: [u8; 32] = hx(&v["nonce"]).try_into().unwrap();

        // The RNG supplies the PSS salt, then the blind r (little-endian, as
        // crypto-bigint's random_mod draws it). The vector's `blind` is r.
        let r = hx(&v["blind"]);
        let mut r_le = r.clone();
        r_le.reverse();
        let mut rng = Replay(vec![hx(&v["salt"]), r_le]);
        let (request, pending) = pk.begin_with_nonce(nonce, digest, &mut rng).unwrap();
        assert_eq!(request.encode(), hx(&v["token_request"]));
        let response = sk.issue(&request, &mut rand::rngs::OsRng).unwrap();
        assert_eq!(response.encode(), hx(&v["token_response"]).as_slice());
        let token = pending.finalize(&response).unwrap();
        assert_eq!(token.encode(), hx(&v["token"]));
        pk.verify(&token).unwrap();
        assert_eq!(token.token_type(), TokenType::BlindRsa);
    }
}

#[test]
fn rfc9577_token_authenticator_inputs() {
    let all = load("privacypass/token-test-vectors.json");
    let vs = all.as_array().unwrap();
    assert_eq!(vs.len(), 5);
    for v in vs {
        let ty = TokenType::from_code(
            u16::from_str_radix(v["token_type"].as_str().unwrap(), 16).unwrap(),
        )
        .unwrap();
        let issuer = String::from_utf8(hx(&v["issuer_name"])).unwrap();
        let origin = String::from_utf8(hx(&v["origin_info"])).unwrap();
        let ctx = if v["redemption_context"].as_str().unwrap().is_empty() {
            vec![]
        } else {
            hx(&v["redemption_context"])
        };
        let challenge = TokenChallenge::new(ty, &issuer, &ctx, &origin).unwrap();
        // A token with this input and any authenticator: its input must match the vector.
        let mut bytes = ty.code().to_be_bytes().to_vec();
        bytes.extend_from_slice(&hx(&v["nonce"]));
        bytes.extend_from_slice(&challenge.digest());
        bytes.extend_from_slice(&hx(&v["token_key_id"]));
        bytes.resize(ty.token_len(), 0);
        let token = Token::decode(&bytes).unwrap();
        assert_eq!(
            token.authenticator_input(),
            hx(&v["token_authenticator_input"])
        );
    }
}
