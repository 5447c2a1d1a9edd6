//! Inference engine trait with an embedded candle engine and an OpenAI-compatible upstream.
