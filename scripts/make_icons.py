"""Draw the node's app icons: two threads twisted into an "S" on Sereus blue.

Writes static/icons/icon-{192,512}.png (purpose "any": a rounded square with transparent corners)
and static/icons/maskable-{192,512}.png (purpose "maskable": full-bleed background, the motif
inside the central safe zone, a circle of 40% of the size, so any launcher mask keeps it whole).

Run from the repository root: ``.venv/bin/python scripts/make_icons.py``. The drawing is
deterministic: the same Pillow version writes the same files.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

OUT_DIR = Path(__file__).resolve().parent.parent / "static" / "icons"
SIZES = (192, 512)
SUPERSAMPLE = 4  # drawn 4x larger, then scaled down: Pillow does not antialias shapes

BLUE = (29, 78, 216)  # #1d4ed8, the manifest's theme_color
STRAND_COLOURS = ((255, 255, 255), (251, 191, 36))  # white and gold: two parties, one thread

# The motif in unit coordinates, centred on (0, 0), y pointing down. The S is two circular arcs
# meeting tangentially at the centre; the two strands twist round that centre line.
ARC_RADIUS = 0.2
ARC_SWEEP = math.radians(255)
TWIST_AMPLITUDE = 0.06  # how far a strand swings from the centre line
TWIST_RATE = 12.0  # radians of twist per unit of centre-line length
STRAND_WIDTH = 0.055
GAP = 0.018  # background showing round a strand where it passes over the other
STEPS = 1500  # samples along the centre line
CROSSING_SPAN = 60  # samples either side of a crossing drawn again on top
MASKABLE_RADIUS = 0.37  # the safe zone's radius is 0.40 of the size: keep a margin

Point = tuple[float, float]


def strands() -> list[list[tuple[float, float, float]]]:
    """Sample points (x, y, depth) of each strand, depth in [-1, 1] with 1 nearest the eye.

    Each strand is a helix round the S seen from the front: its sideways offset along the curve's
    normal is sin(phase), its depth cos(phase). The strands are half a turn apart.
    """
    half = STEPS // 2
    step = 2 * ARC_SWEEP * ARC_RADIUS / STEPS  # samples are evenly spaced along the S
    result: list[list[tuple[float, float, float]]] = [[] for _ in STRAND_COLOURS]
    for i in range(STEPS + 1):
        if i <= half:
            # Upper bowl, centre (0, -r): ends at its bottom, (0, 0), heading right; so on screen
            # it runs from the upper right, over the top and down the left side.
            angle = math.pi / 2 + ARC_SWEEP * (1 - i / half)
            cy, flip = -ARC_RADIUS, 1
        else:
            # Lower bowl, centre (0, r): starts at its top, (0, 0), heading right, clockwise.
            angle = -math.pi / 2 + ARC_SWEEP * (i - half) / half
            # Its outward normal points the other way relative to the direction of travel: flip
            # it, so a strand stays on the same side of the curve through the join.
            cy, flip = ARC_RADIUS, -1
        nx, ny = math.cos(angle), math.sin(angle)
        x, y = ARC_RADIUS * nx, cy + ARC_RADIUS * ny
        for n, points in enumerate(result):
            phase = TWIST_RATE * i * step + n * 2 * math.pi / len(STRAND_COLOURS)
            offset = flip * TWIST_AMPLITUDE * math.sin(phase)
            points.append((x + nx * offset, y + ny * offset, math.cos(phase)))
    return result


def crossings(lines: list[list[tuple[float, float, float]]]) -> list[tuple[int, int]]:
    """Where the two strands cross, as (upper strand, sample index).

    They cross where their separation vector flips direction between two samples; the one nearer
    the eye there passes over.
    """
    a, b = lines
    found = []
    for i in range(1, len(a)):
        dx0, dy0 = a[i - 1][0] - b[i - 1][0], a[i - 1][1] - b[i - 1][1]
        dx1, dy1 = a[i][0] - b[i][0], a[i][1] - b[i][1]
        if dx0 * dx1 + dy0 * dy1 < 0:
            found.append((0 if a[i][2] > b[i][2] else 1, i))
    return found


def motif_extent() -> float:
    """The largest distance from the centre that the strands paint, in unit coordinates."""
    reach = max(math.hypot(x, y) for points in strands() for x, y, _ in points)
    return reach + STRAND_WIDTH / 2 + GAP


def stamp(draw: ImageDraw.ImageDraw, points: list[Point], radius: float, fill: object) -> None:
    """Paint a thick line as a row of overlapping disks.

    Pillow's wide polylines grow spikes where many tiny segments meet; disks do not.
    """
    for x, y in points:
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=fill)


def draw_motif(image: Image.Image, scale: float) -> None:
    """Paint the strands onto the square ``image``; ``scale`` is pixels per unit, centred.

    Both strands are drawn whole; then at each crossing the upper strand is drawn again over a
    band of background a little wider than itself, which makes the twist read as over-and-under.
    The band is masked out of the upper strand's own path, so it never notches that strand.
    """
    draw = ImageDraw.Draw(image)
    c = image.width / 2
    radius = STRAND_WIDTH / 2 * scale
    lines = strands()
    pixels = [[(c + x * scale, c + y * scale) for x, y, _ in points] for points in lines]
    for strand, line in enumerate(pixels):
        stamp(draw, line, radius, STRAND_COLOURS[strand])
    for upper, i in crossings(lines):
        line = pixels[upper]
        piece = line[max(0, i - CROSSING_SPAN) : i + CROSSING_SPAN]
        band = Image.new("L", image.size, 0)
        band_draw = ImageDraw.Draw(band)
        stamp(band_draw, piece, radius + GAP * scale, 255)
        stamp(band_draw, line[max(0, i - 3 * CROSSING_SPAN) : i + 3 * CROSSING_SPAN], radius, 0)
        image.paste(BLUE, mask=band)
        stamp(draw, piece, radius, STRAND_COLOURS[upper])


def icon_any(size: int) -> Image.Image:
    big = size * SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    ImageDraw.Draw(image).rounded_rectangle(
        [0, 0, big - 1, big - 1], radius=round(big * 0.22), fill=BLUE
    )
    # The S fills most of the square, clear of the rounded corners.
    draw_motif(image, scale=big * 0.44 / motif_extent())
    return image.resize((size, size), Image.Resampling.LANCZOS)


def icon_maskable(size: int) -> Image.Image:
    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), BLUE)
    draw_motif(image, scale=big * MASKABLE_RADIUS / motif_extent())
    return image.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for size in SIZES:
        icon_any(size).save(OUT_DIR / f"icon-{size}.png", optimize=True)
        icon_maskable(size).save(OUT_DIR / f"maskable-{size}.png", optimize=True)
        print(f"wrote icon-{size}.png and maskable-{size}.png")


if __name__ == "__main__":
    main()
