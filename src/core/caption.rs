//! A caption under an exported heatmap: the part's score and decision, and a legend of
//! the colours, drawn into the image itself so that the file says what it shows wherever
//! it is copied. Text is drawn with a built-in 5x7 pixel font (upper case, digits and
//! a few signs), scaled with the image.

use crate::core::colormap::Colormap;
use crate::core::message::format_score_trimmed;
use image::{Rgb, RgbImage};

/// The glyphs: seven rows of five pixels each, top to bottom, the high bit on the left.
const GLYPHS: [(char, [u8; 7]); 49] = [
    (
        '%',
        [
            0b11000, 0b11001, 0b00010, 0b00100, 0b01000, 0b10011, 0b00011,
        ],
    ),
    (
        '(',
        [
            0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010,
        ],
    ),
    (
        ')',
        [
            0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000,
        ],
    ),
    (
        '+',
        [
            0b00000, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0b00000,
        ],
    ),
    (
        ',',
        [
            0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b00100, 0b01000,
        ],
    ),
    (
        '-',
        [
            0b00000, 0b00000, 0b00000, 0b11111, 0b00000, 0b00000, 0b00000,
        ],
    ),
    (
        '.',
        [
            0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b01100,
        ],
    ),
    (
        '/',
        [
            0b00000, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b00000,
        ],
    ),
    (
        '0',
        [
            0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110,
        ],
    ),
    (
        '1',
        [
            0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110,
        ],
    ),
    (
        '2',
        [
            0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111,
        ],
    ),
    (
        '3',
        [
            0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110,
        ],
    ),
    (
        '4',
        [
            0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010,
        ],
    ),
    (
        '5',
        [
            0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110,
        ],
    ),
    (
        '6',
        [
            0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110,
        ],
    ),
    (
        '7',
        [
            0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000,
        ],
    ),
    (
        '8',
        [
            0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110,
        ],
    ),
    (
        '9',
        [
            0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100,
        ],
    ),
    (
        ':',
        [
            0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b01100, 0b00000,
        ],
    ),
    (
        '<',
        [
            0b00010, 0b00100, 0b01000, 0b10000, 0b01000, 0b00100, 0b00010,
        ],
    ),
    (
        '=',
        [
            0b00000, 0b00000, 0b11111, 0b00000, 0b11111, 0b00000, 0b00000,
        ],
    ),
    (
        '>',
        [
            0b01000, 0b00100, 0b00010, 0b00001, 0b00010, 0b00100, 0b01000,
        ],
    ),
    (
        'A',
        [
            0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
        ],
    ),
    (
        'B',
        [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110,
        ],
    ),
    (
        'C',
        [
            0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110,
        ],
    ),
    (
        'D',
        [
            0b11110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11110,
        ],
    ),
    (
        'E',
        [
            0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111,
        ],
    ),
    (
        'F',
        [
            0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000,
        ],
    ),
    (
        'G',
        [
            0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111,
        ],
    ),
    (
        'H',
        [
            0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
        ],
    ),
    (
        'I',
        [
            0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110,
        ],
    ),
    (
        'J',
        [
            0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100,
        ],
    ),
    (
        'K',
        [
            0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001,
        ],
    ),
    (
        'L',
        [
            0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111,
        ],
    ),
    (
        'M',
        [
            0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001,
        ],
    ),
    (
        'N',
        [
            0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001,
        ],
    ),
    (
        'O',
        [
            0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
        ],
    ),
    (
        'P',
        [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000,
        ],
    ),
    (
        'Q',
        [
            0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101,
        ],
    ),
    (
        'R',
        [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001,
        ],
    ),
    (
        'S',
        [
            0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110,
        ],
    ),
    (
        'T',
        [
            0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100,
        ],
    ),
    (
        'U',
        [
            0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
        ],
    ),
    (
        'V',
        [
            0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100,
        ],
    ),
    (
        'W',
        [
            0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010,
        ],
    ),
    (
        'X',
        [
            0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001,
        ],
    ),
    (
        'Y',
        [
            0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100,
        ],
    ),
    (
        'Z',
        [
            0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111,
        ],
    ),
    (
        '_',
        [
            0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b11111,
        ],
    ),
];

const BACKGROUND: Rgb<u8> = Rgb([24, 24, 24]);
const INK: Rgb<u8> = Rgb([235, 235, 235]);

fn glyph(c: char) -> Option<[u8; 7]> {
    let c = c.to_ascii_uppercase();
    GLYPHS.iter().find(|(g, _)| *g == c).map(|(_, rows)| *rows)
}

/// Draws `text` with its top left at (`x`, `y`), each font pixel `scale` pixels wide;
/// characters without a glyph are left blank. Returns the x after the text.
pub fn draw_text(
    img: &mut RgbImage,
    text: &str,
    x: u32,
    y: u32,
    scale: u32,
    colour: Rgb<u8>,
) -> u32 {
    let mut cx = x;
    for c in text.chars() {
        if let Some(rows) = glyph(c) {
            for (row, bits) in rows.iter().enumerate() {
                for col in 0..5u32 {
                    if bits & (0b10000 >> col) == 0 {
                        continue;
                    }
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let (px, py) = (cx + col * scale + dx, y + row as u32 * scale + dy);
                            if px < img.width() && py < img.height() {
                                img.put_pixel(px, py, colour);
                            }
                        }
                    }
                }
            }
        }
        cx += 6 * scale;
    }
    cx
}

/// The width of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: u32) -> u32 {
    (text.chars().count() as u32 * 6).saturating_sub(1) * scale
}

/// `text` broken at spaces into lines at most `width` pixels wide at `scale` (a word wider
/// than that is cut where the width ends; its start is kept).
fn wrap(text: &str, width: u32, scale: u32) -> Vec<String> {
    let fits = |t: &str| text_width(t, scale) <= width;
    let mut out: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let joined = if line.is_empty() {
            word.to_owned()
        } else {
            format!("{line} {word}")
        };
        if fits(&joined) || line.is_empty() {
            line = joined;
        } else {
            out.push(std::mem::take(&mut line));
            line = word.to_owned();
        }
    }
    out.push(line);
    // The characters that fit (`text_width`: 6 pixels each at scale 1, less the last gap).
    let most = ((width / scale.max(1) + 1) / 6).max(1) as usize;
    out.into_iter()
        .map(|l| {
            l.chars()
                .take(most)
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// The colour scale drawn under an exported heatmap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Legend {
    /// The good-part scale: "1X NORMAL" at the bottom, `vmax` at the top.
    Good {
        /// The top of the colours.
        vmax: f32,
    },
    /// The decision scale: a typical good part at the bottom, the reject line marked
    /// three quarters up ([`crate::core::heat_layer::DecisionScale`]).
    Line,
}

/// `img` with a strip below it: the `lines` of text, then the colour scale on the same
/// log scale as the overlay, labelled as `legend` says.
pub fn with_caption(
    img: &RgbImage,
    lines: &[String],
    colormap: Colormap,
    legend: Legend,
) -> RgbImage {
    let (w, h) = img.dimensions();
    let scale = (w / 320).clamp(1, 4);
    let pad = 4 * scale;
    let line_h = 9 * scale;
    let bar_h = 8 * scale;
    // Every word is shown, on as many lines as the image's width needs.
    let lines: Vec<String> = lines
        .iter()
        .flat_map(|l| wrap(l, w.saturating_sub(2 * pad), scale))
        .collect();
    let strip = pad + lines.len() as u32 * line_h + bar_h + 2 * scale + line_h + pad;
    let mut out = RgbImage::from_pixel(w, h + strip, BACKGROUND);
    image::imageops::replace(&mut out, img, 0, 0);
    let mut y = h + pad;
    for line in &lines {
        draw_text(&mut out, line, pad, y, scale, INK);
        y += line_h;
    }
    // The colour bar.
    let (x0, x1) = (pad, w.saturating_sub(pad).max(pad + 1));
    for x in (x0..x1).filter(|x| *x < w) {
        let t = (x - x0) as f32 / (x1 - x0).max(1) as f32;
        let c = Rgb(colormap.map(t));
        for dy in 0..bar_h {
            if y + dy < out.height() {
                out.put_pixel(x, y + dy, c);
            }
        }
    }
    let bar_y = y;
    y += bar_h + 2 * scale;
    let (left, right) = match legend {
        Legend::Good { vmax } => (
            "1X NORMAL".to_owned(),
            format!("{}X", format_score_trimmed(f64::from(vmax))),
        ),
        Legend::Line => ("GOOD".to_owned(), "MORE".to_owned()),
    };
    draw_text(&mut out, &left, x0, y, scale, INK);
    let rw = text_width(&right, scale);
    draw_text(&mut out, &right, x1.saturating_sub(rw), y, scale, INK);
    if legend == Legend::Line {
        // The reject line: a tick across the bar and its name under it.
        let at = x0 + ((x1 - x0) as f32 * crate::core::heat_layer::LINE_LEVEL).round() as u32;
        for dy in 0..bar_h {
            for dx in 0..scale {
                if at + dx < w && bar_y + dy < out.height() {
                    out.put_pixel(at + dx, bar_y + dy, INK);
                }
            }
        }
        let name = "LINE";
        let nw = text_width(name, scale);
        draw_text(&mut out, name, at.saturating_sub(nw / 2), y, scale, INK);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_glyph_is_distinct_and_text_is_drawn() {
        for (i, (a, ga)) in GLYPHS.iter().enumerate() {
            for (b, gb) in &GLYPHS[i + 1..] {
                assert!(a != b && ga != gb, "{a} and {b}");
            }
        }
        let mut img = RgbImage::new(40, 10);
        let end = draw_text(&mut img, "A1", 0, 0, 1, INK);
        assert_eq!(end, 12);
        // The A's apex and the 1's stem are drawn; the gap between them is not.
        assert_eq!(*img.get_pixel(2, 0), INK);
        assert_eq!(*img.get_pixel(8, 3), INK);
        assert_eq!(*img.get_pixel(5, 3), Rgb([0, 0, 0]));
        assert_eq!(text_width("AB", 2), 22);
        assert_eq!(format_score_trimmed(f64::from(20.0f32)), "20");
        assert_eq!(format_score_trimmed(f64::from(2.5f32)), "2.5");
    }

    #[test]
    fn a_one_pixel_image_gets_a_caption_too() {
        let img = RgbImage::from_pixel(1, 1, Rgb([9, 9, 9]));
        let out = with_caption(
            &img,
            &["SCORE 1".into()],
            Colormap::Grey,
            Legend::Good { vmax: 20.0 },
        );
        assert_eq!(out.width(), 1);
        assert_eq!(*out.get_pixel(0, 0), Rgb([9, 9, 9]));
    }

    #[test]
    fn the_caption_goes_under_the_image_with_the_colour_scale() {
        let img = RgbImage::from_pixel(320, 100, Rgb([200, 10, 10]));
        let out = with_caption(
            &img,
            &["SCORE 71.3 REJECT".into()],
            Colormap::Grey,
            Legend::Good { vmax: 20.0 },
        );
        assert_eq!(out.width(), 320);
        assert!(out.height() > 100 + 20);
        // The image is untouched, the strip holds text and the bar's two ends.
        assert_eq!(*out.get_pixel(10, 50), Rgb([200, 10, 10]));
        let strip_ink = (100..out.height())
            .flat_map(|y| (0..320).map(move |x| (x, y)))
            .filter(|(x, y)| *out.get_pixel(*x, *y) == INK)
            .count();
        assert!(strip_ink > 100, "{strip_ink}");
        let bar_y = 100 + 4 + 9 + 2;
        assert_eq!(out.get_pixel(4, bar_y).0, Colormap::Grey.map(0.0));
        assert_eq!(
            out.get_pixel(315, bar_y).0,
            Colormap::Grey.map(311.0 / 312.0)
        );
    }

    #[test]
    fn a_caption_wider_than_the_image_wraps_at_spaces() {
        // 6 pixels a character at scale 1: 60 pixels hold 10 characters.
        assert_eq!(
            wrap("001.png  score 313  reject (reject line at 44.7)", 60, 1),
            [
                "001.png ",
                "score 313 ",
                "reject",
                "(reject",
                "line at",
                "44.7)"
            ]
            .map(|l: &str| l.trim_end().to_owned())
        );
        assert_eq!(wrap("short", 60, 1), ["short"]);
        assert_eq!(wrap("averyveryverylongword", 60, 1), ["averyveryv"]);
        let img = RgbImage::new(60, 20);
        let one = with_caption(&img, &["short".to_owned()], Colormap::Jet, Legend::Line);
        let wrapped = with_caption(
            &img,
            &["001.png  score 313  reject".to_owned()],
            Colormap::Jet,
            Legend::Line,
        );
        assert!(
            wrapped.height() > one.height(),
            "the strip grows with its lines"
        );
    }
}
