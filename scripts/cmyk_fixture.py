"""Writes tests/data/cmyk.jpg: a 16 x 16 CMYK JPEG (four flat quadrants), for the test
that CMYK JPEGs load as RGB. The `image` crate cannot write CMYK, so PIL makes it once and
the file is kept in the repository; run this again only to regenerate it.

Usage: python cmyk_fixture.py [OUT_FILE]    (default: tests/data/cmyk.jpg)

Prints the RGB that PIL's own convert("RGB") gives at the centre of each quadrant, the
values tests/bad_input.rs expects.
"""

import pathlib
import sys

from PIL import Image

# (C, M, Y, K) of the quadrants: top left, top right, bottom left, bottom right.
QUADRANTS = [(0, 255, 255, 0), (255, 0, 255, 0), (255, 255, 0, 0), (0, 0, 0, 128)]


def main() -> None:
    root = pathlib.Path(__file__).resolve().parent.parent
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "tests/data/cmyk.jpg"
    image = Image.new("CMYK", (16, 16))
    for index, colour in enumerate(QUADRANTS):
        x0, y0 = 8 * (index % 2), 8 * (index // 2)
        image.paste(colour, (x0, y0, x0 + 8, y0 + 8))
    image.save(out, quality=95)
    back = Image.open(out)
    assert back.mode == "CMYK", back.mode
    rgb = back.convert("RGB")
    for index in range(4):
        print(rgb.getpixel((8 * (index % 2) + 4, 8 * (index // 2) + 4)))


if __name__ == "__main__":
    main()
