//! (e) The reporting thread on one exchange whose responses are the input: the comparison,
//! the console block and the JSON line. See `trident::report::check_report`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| trident::report::check_report(data));
