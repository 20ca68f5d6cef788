//! (a) A client's bytes in any split, through the request framing as the proxy runs it:
//! never panics, the same requests whatever the splits, what is forwarded re-frames to what
//! was accepted. See `trident::http::stream::check_request_stream`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| trident::http::stream::check_request_stream(data));
