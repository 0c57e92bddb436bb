//! The config loader never panics: any text gives a config or a list of errors.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../../src/config.rs"]
mod config;
#[path = "../../../src/glob.rs"]
mod glob;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lookup = |name: &str| (name.len() % 2 == 0).then(|| format!("v-{name}"));
    match config::parse(text, &lookup) {
        Ok(loaded) => {
            for b in &loaded.config.backends {
                assert!(config::check_backend_name(&b.name).is_ok());
            }
        }
        Err(e) => assert!(!e.0.is_empty()),
    }
    let _ = config::expand_vars(text, &lookup);
});
