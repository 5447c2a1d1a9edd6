//! The OHTTP gateway (operator): decapsulates, redeems tokens, routes sessions.
