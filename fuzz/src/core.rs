//! The main crate's `core` modules that the fuzz targets need, compiled from its source
//! files. The module tree mirrors the main crate's so that their `crate::core::...` paths
//! resolve. Only files that need nothing else from the crate can be listed; when one of
//! them starts to use another module, list that one too (the fuzz build fails until then).

#[path = "../../src/core/config.rs"]
pub mod config;
#[path = "../../src/core/image_io.rs"]
pub mod image_io;
#[path = "../../src/core/message.rs"]
pub mod message;
#[path = "../../src/core/model_header.rs"]
pub mod model_header;
#[path = "../../src/core/torch_pickle.rs"]
pub mod torch_pickle;
