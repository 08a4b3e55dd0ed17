//! Config loading and validation: any text gives a config or an error naming a key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|text: &str| {
    if let Err(err) = dtbridge::config::load_str(text, Path::new("/nonexistent/fuzz.toml")) {
        assert!(!err.to_string().is_empty());
    }
});
