//! The SSE parser never panics on any stream, and reads back exactly the data an event was
//! framed with.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../../src/sse.rs"]
mod sse;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parser = sse::Parser::default();
    for line in text.split_inclusive('\n') {
        let _ = parser.line(line);
    }
    // Round trip: data without carriage returns comes back as it went out.
    let payload: String = text.chars().filter(|c| *c != '\r').collect();
    let mut parser = sse::Parser::default();
    let framed = sse::event("message", &payload);
    let events: Vec<sse::Event> = framed.split_inclusive('\n').filter_map(|l| parser.line(l)).collect();
    assert_eq!(events.len(), 1, "{framed:?}");
    assert_eq!(events[0].data, payload);
});
