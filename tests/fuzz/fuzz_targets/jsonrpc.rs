//! The JSON-RPC envelope parser: never panics, and whatever it accepts serializes to text
//! it parses back to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)] // the gateway uses more of the module than this target
#[path = "../../../src/jsonrpc.rs"]
mod jsonrpc;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(msg) = jsonrpc::Message::parse(text) {
        let once = msg.to_json();
        let again = jsonrpc::Message::parse(&once).expect("serialized messages parse");
        assert_eq!(again.to_json(), once, "serializing is stable");
    }
});
