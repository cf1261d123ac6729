//! Text → the DifferNet metadata entry of an otherwise well-formed model file, then the
//! same checks as `model_meta`. Mutating the raw file rarely keeps both the safetensors
//! header and the JSON inside it valid; this target spends its runs on the metadata and
//! the configuration instead.

#![no_main]

use differnet_fuzz::{check_model_file, model_file_with_metadata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|json: &str| {
    check_model_file(&model_file_with_metadata(json));
});
