//! The TOML files a client reads: the trust policy (crates/attest `TrustPolicy`) and the
//! client configuration (crates/sdk `client.toml`, which names or inlines a policy).
//! Never panics. Properties: an accepted policy written back with `to_toml` parses to the
//! same policy; an accepted configuration written back with `render` (what `confide up`
//! writes) parses to the same endpoints, token settings, state files and policy.
#![no_main]

use std::path::{Path, PathBuf};

use confide_attest::TrustPolicy;
use confide_sdk::config::{ClientConfig, ConfigError, render};
use libfuzzer_sys::fuzz_target;

const DIR: &str = "/fuzz";

fn parse(text: &str, policy: &str) -> Result<ClientConfig, ConfigError> {
    // The files a configuration names come from this closure, not the disk: the
    // credential file holds a fixed secret, and any policy file holds `policy`.
    let read = |p: &Path, what: &'static str| -> Result<String, ConfigError> {
        if p.ends_with("account.secret") || what.contains("credential") {
            Ok("fuzz-credential".to_owned())
        } else {
            Ok(policy.to_owned())
        }
    };
    ClientConfig::from_toml(text, &Path::new(DIR).join("client.toml"), &read)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = TrustPolicy::from_toml(text) {
        let again = TrustPolicy::from_toml(&p.to_toml());
        assert_eq!(again.ok(), Some(p));
    }
    let production = TrustPolicy::production().to_toml();
    // The input as a whole configuration, and as the policy file a fixed configuration
    // names, so both halves of the schema are reached.
    let _ = parse(
        "version = 1\n[endpoints]\nrelay = \"http://127.0.0.1:1/\"\n\
         issuer = \"http://127.0.0.1:2/\"\nledger = \"http://127.0.0.1:3/\"\n\
         [account]\ncredential_file = \"account.secret\"\n\
         [tokens]\nissuer_name = \"i\"\norigin_info = \"o\"\ntoken_type = \"voprf\"\n\
         [state]\ntokens = \"t.json\"\ncheckpoint = \"c.txt\"\n\
         [trust]\npolicy_file = \"p.toml\"\n",
        text,
    );
    let Ok(cfg) = parse(text, &production) else {
        return;
    };
    let policy_text = cfg.policy.to_toml();
    let rendered = render(
        &cfg.endpoints,
        &cfg.tokens,
        &PathBuf::from("account.secret"),
        &PathBuf::from("policy.toml"),
        &cfg.token_store,
        &cfg.checkpoint_state,
    );
    let back = parse(&rendered, &policy_text).expect("a rendered configuration parses");
    assert_eq!(back.endpoints, cfg.endpoints);
    assert_eq!(back.tokens, cfg.tokens);
    assert_eq!(back.token_store, cfg.token_store);
    assert_eq!(back.checkpoint_state, cfg.checkpoint_state);
    assert_eq!(back.policy, cfg.policy);
});
