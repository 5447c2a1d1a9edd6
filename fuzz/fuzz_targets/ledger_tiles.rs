//! tlog-tiles path and entry bundle parsers: never panic; accepted paths and bundles
//! re-encode to the same input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(t) = confide_tiles::TileId::parse_path(s)
    {
        assert_eq!(t.path(), s);
    }
    if let Some((&w, rest)) = data.split_first()
        && let Ok(entries) = confide_tiles::decode_entry_bundle(rest, u16::from(w))
    {
        assert_eq!(
            confide_tiles::encode_entry_bundle(&entries).ok().as_deref(),
            Some(rest)
        );
    }
});
