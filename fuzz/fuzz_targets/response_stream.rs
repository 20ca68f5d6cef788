//! (b) An upstream's answer in any split, for a HEAD request or not, through the response
//! framing: the same outcome whatever the splits; what the client receives re-frames to the
//! same response. See `trident::http::stream::check_response_stream`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| trident::http::stream::check_response_stream(data));
