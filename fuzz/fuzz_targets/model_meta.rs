//! Bytes → a model file's header and metadata, read as `engine::model_file` reads them
//! (see `differnet_fuzz::check_model_file`): the safetensors header, the JSON entry, the
//! format checks, then the configuration checks of loading.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    differnet_fuzz::check_model_file(data);
});
