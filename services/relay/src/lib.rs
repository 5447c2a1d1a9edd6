//! The OHTTP relay (third party): forwards encapsulated bodies only.
