//! Scoring lanes share one model between threads: their scores and heatmaps must be those
//! of scoring the same images one by one on the calling thread.

mod common;

use common::{texture, tiny_config};
use differnet::core::config::BackboneKind;
use differnet::engine::backbone::Backbone;
use differnet::engine::detector::{Detector, SharedDetector};
use differnet::engine::detectors::differnet::DifferNet;
use differnet::engine::lanes::Lanes;
use std::rc::Rc;
use tch::Device;

#[test]
fn lanes_give_the_scores_and_heatmaps_of_one_by_one_scoring() {
    let backbone = Backbone::load(
        BackboneKind::EfficientnetLite0,
        &common::efficientnet_weights(),
        Device::Cpu,
    )
    .unwrap();
    let model =
        Detector::DifferNet(DifferNet::new(tiny_config(), Rc::new(backbone), Device::Cpu).unwrap());
    // Half with heatmaps, and scratched ones among them, so outputs differ per image.
    let items: Vec<(image::RgbImage, bool)> = (0..8)
        .map(|i| (texture(100 + i, i % 3 == 0), i % 2 == 0))
        .collect();

    let one_by_one: Vec<_> = items
        .iter()
        .map(|(img, heat)| model.score_image(img, *heat, None))
        .collect();

    let shared = SharedDetector::new(&model);
    let lanes = Lanes {
        count: 3,
        threads_each: 1,
    };
    let mut in_lanes = Vec::new();
    let started = lanes.map(
        items,
        &|(img, heat)| shared.score_image(&img, heat, None),
        &|| false,
        &mut |i, raw| in_lanes.push((i, raw)),
    );
    assert_eq!(started, 8);
    assert_eq!(in_lanes.len(), 8);

    let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 * a.abs().max(b.abs()).max(1e-6);
    for ((i, lane), alone) in in_lanes.iter().zip(&one_by_one) {
        assert!(
            close(lane.score, alone.score),
            "image {i}: {} in a lane, {} alone",
            lane.score,
            alone.score
        );
        match (&lane.heatmap, &alone.heatmap) {
            (None, None) => {}
            (Some(a), Some(b)) => {
                assert_eq!((a.width, a.height), (b.width, b.height));
                let peak = b.values.iter().fold(0f32, |m, v| m.max(v.abs()));
                let worst = a
                    .values
                    .iter()
                    .zip(&b.values)
                    .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(peak > 0.0, "image {i}: empty heatmap");
                assert!(
                    worst <= 1e-3 * peak,
                    "image {i}: heatmaps differ by {worst} (peak {peak})"
                );
            }
            _ => panic!("image {i}: heatmap in one run only"),
        }
    }
    // The images really differ, so matching in order means each went to its own slot.
    assert!(!close(in_lanes[0].1.score, in_lanes[1].1.score));
}
