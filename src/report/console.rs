//! The console block format (stdout), one block per exchange:
//!
//! ```text
//! REQUEST 1 => GET /hello HTTP/1.1 (host=localhost:8080, body=0B)
//! RESPONSE 1 primary => 200 OK (body=12B, 0.4ms)
//! RESPONSE 1 secondary => 200 OK (body=12B, 0.5ms)
//! RESPONSE 1 candidate => error: connection refused
//! ```

use super::ExchangeRecord;

/// Appends the four lines of `record`'s block to `out`.
pub fn write_block(record: &ExchangeRecord, out: &mut Vec<u8>) {
    let _ = (record, out);
    todo!()
}
