//! (c) The chunked decoder alone: split-invariant, never more payload than input, and its
//! re-framing decodes to the same payload. See `trident::http::stream::check_chunked`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| trident::http::stream::check_chunked(data));
