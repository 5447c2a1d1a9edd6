//! The transparency ledger service: sequencer, durable storage, tiles, witness collection.
