//! Privacy Pass (RFC 9576-9578): token types 0x0001 (VOPRF P-384) and 0x0002 (blind RSA).
