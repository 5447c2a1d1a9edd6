//! Lenient *format* decoding of evidence files (never lenient about content): reports given
//! as hex or binary, certificates as PEM, PEM bundles or DER. Used by the CLI and tests.

use base64::Engine as _;

use crate::Error;

/// Decode a report given either as raw bytes or as hex text (whitespace ignored).
///
/// Bytes are treated as hex only if every non-whitespace byte is a hex digit and the count
/// is even; a binary report that happens to be all ASCII hex digits does not exist in
/// practice (SNP/TDX reports start with small binary version numbers).
pub fn decode_hex_or_binary(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let compact: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let looks_hex = !compact.is_empty() && compact.iter().all(u8::is_ascii_hexdigit);
    if looks_hex {
        hex::decode(&compact).map_err(|_| Error::InvalidHex)
    } else {
        Ok(bytes.to_vec())
    }
}

/// Decode every `CERTIFICATE` PEM block in `text` (RFC 7468 §2, strict base64 body).
pub fn pem_certificates(text: &str) -> Result<Vec<Vec<u8>>, Error> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let end = after
            .find(END)
            .ok_or(Error::InvalidPem("missing END line"))?;
        let body: String = after[..end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| Error::InvalidPem("bad base64 body"))?;
        out.push(der);
        rest = &after[end + END.len()..];
    }
    Ok(out)
}

/// Decode certificates given as a PEM bundle, or a single DER certificate.
pub fn decode_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    // A DER certificate starts with SEQUENCE (0x30); PEM is text.
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes.to_vec()]);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| Error::InvalidPem("not UTF-8"))?;
    let certs = pem_certificates(text)?;
    if certs.is_empty() {
        return Err(Error::NoCertificate);
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_binary() {
        assert_eq!(decode_hex_or_binary(b"0a0B\n").unwrap(), vec![10, 11]);
        assert_eq!(decode_hex_or_binary(&[2, 0, 0]).unwrap(), vec![2, 0, 0]);
        assert!(matches!(
            decode_hex_or_binary(b"abc"),
            Err(Error::InvalidHex)
        ));
    }

    #[test]
    fn pem_bundle_and_der() {
        let pem = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/sev-snp/cert_chain_milan"
        ))
        .unwrap();
        let certs = decode_certificates(&pem).unwrap();
        assert_eq!(certs.len(), 2);
        assert!(certs.iter().all(|c| c[0] == 0x30));
        let der = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/sev-snp/vcek_milan.der"
        ))
        .unwrap();
        assert_eq!(decode_certificates(&der).unwrap(), vec![der]);
        assert!(matches!(
            decode_certificates(b"hello"),
            Err(Error::NoCertificate)
        ));
        assert!(matches!(
            decode_certificates(b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----"),
            Err(Error::InvalidPem(_))
        ));
    }
}
