//! No quiet witness quorum (issue 13, finding 5): `confide ledger verify|proof|export` and
//! `confide monitor` default `--quorum` to every listed witness, and refuse a quorum of 0
//! unless `--allow-no-witness-quorum` says this is a development setup. Before, `--quorum`
//! defaulted to 0 and a forgotten flag checked no witness at all.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn confide(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_confide"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn ledger_verify_without_witnesses_needs_the_development_flag() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("missing-bundle.bin");
    let bundle = bundle.to_str().unwrap();
    let key =
        confide_note::SignerKey::from_seed("ledger.test", confide_note::KeyType::Ed25519, &[7; 32])
            .unwrap()
            .verifier()
            .to_vkey();
    let base = ["ledger", "verify", "--bundle", bundle, "--ledger-key", &key];

    // No witness and no quorum: refused for the quorum, before the bundle is even read.
    let o = confide(&base);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--allow-no-witness-quorum"),
        "{}",
        stderr(&o)
    );
    // An explicit 0 is refused the same way.
    let mut a = base.to_vec();
    a.extend(["--quorum", "0"]);
    let o = confide(&a);
    assert!(
        stderr(&o).contains("--allow-no-witness-quorum"),
        "{}",
        stderr(&o)
    );
    // With the development flag the command goes on (and fails on the missing bundle).
    let mut a = base.to_vec();
    a.push("--allow-no-witness-quorum");
    let o = confide(&a);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));

    // A witness listed without --quorum: the quorum is that witness, not 0.
    let w = confide_note::SignerKey::from_seed(
        "w.test",
        confide_note::KeyType::CosignatureV1,
        &[8; 32],
    )
    .unwrap()
    .verifier()
    .to_vkey();
    let mut a = base.to_vec();
    a.extend(["--witness-key", &w]);
    let o = confide(&a);
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));

    // `confide monitor` follows the same rule, before contacting the ledger.
    let state = dir.path().join("state.txt");
    let o = confide(&[
        "monitor",
        "--ledger",
        "http://127.0.0.1:1",
        "--state",
        state.to_str().unwrap(),
        "--ledger-key",
        &key,
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--allow-no-witness-quorum"),
        "{}",
        stderr(&o)
    );
}
