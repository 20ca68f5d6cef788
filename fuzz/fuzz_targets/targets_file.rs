//! (d) The targets-file parser, on inputs that cannot make it look a host name up.
//! See `fuzz/targets_check.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../targets_check.rs"]
mod targets_check;

fuzz_target!(|data: &[u8]| targets_check::check_targets_file(data));
