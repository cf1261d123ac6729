//! Bytes → `torch_pickle::parse_state_dict`, the restricted unpickler that reads PyTorch
//! weights files (ZIP and legacy) without running any code. Whatever the bytes, the result
//! must be tensors whose data matches their shape, or a one-line error of bounded length
//! that ends with the name.

#![no_main]

use differnet_fuzz::core::message::MAX_QUOTED_CHARS;
use differnet_fuzz::core::torch_pickle::parse_state_dict;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    match parse_state_dict(data, Path::new("fuzz.pth")) {
        Ok(tensors) => {
            for tensor in tensors {
                let count = tensor
                    .shape
                    .iter()
                    .try_fold(1usize, |count, &side| count.checked_mul(side));
                assert_eq!(count, Some(tensor.data.len()), "{}", tensor.name);
            }
        }
        Err(error) => {
            // One line of bounded length, though names and keys come from the file.
            let message = error.to_string();
            assert!(message.ends_with(": fuzz.pth"), "{message}");
            assert!(!message.contains(['\n', '\r']), "{message}");
            assert!(message.chars().count() <= 2 * MAX_QUOTED_CHARS, "{message}");
        }
    }
});
