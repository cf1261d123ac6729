//! Where the pretrained backbone weights live.
//!
//! `scripts/setup.sh` converts the EfficientNet-Lite0, -Lite1 and -Lite2 ImageNet weights into the cache
//! (`~/.cache/differnet/weights`, or `$DIFFERNET_WEIGHTS_DIR`). AlexNet's come from
//! torchvision's official file, downloaded with a SHA-256 check by `differnet
//! fetch-weights alexnet` or given by path.

use crate::core::config::BackboneKind;
use std::path::PathBuf;

/// File name of the converted EfficientNet-Lite0 weights.
pub const EFFICIENTNET_FILE: &str = "efficientnet_lite0.safetensors";
/// File name of the converted EfficientNet-Lite1 weights.
pub const EFFICIENTNET_LITE1_FILE: &str = "efficientnet_lite1.safetensors";
/// File name of the converted EfficientNet-Lite2 weights.
pub const EFFICIENTNET_LITE2_FILE: &str = "efficientnet_lite2.safetensors";
/// File name of torchvision's AlexNet weights (its hash prefix is in the name).
pub const ALEXNET_FILE: &str = "alexnet-owt-7be5be79.pth";

/// The weights cache folder.
pub fn weights_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DIFFERNET_WEIGHTS_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("DIFFERNET_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/differnet")))
        .unwrap_or_else(|| PathBuf::from(".cache/differnet"));
    cache.join("weights")
}

/// The default weights file of a backbone.
pub fn default_path(kind: BackboneKind) -> PathBuf {
    weights_dir().join(match kind {
        BackboneKind::EfficientnetLite0 => EFFICIENTNET_FILE,
        BackboneKind::EfficientnetLite1 => EFFICIENTNET_LITE1_FILE,
        BackboneKind::EfficientnetLite2 => EFFICIENTNET_LITE2_FILE,
        BackboneKind::Alexnet => ALEXNET_FILE,
    })
}
