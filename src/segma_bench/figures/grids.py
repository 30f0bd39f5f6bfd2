"""Image grids (torchvision's make_grid/save_image), captions, labelled versions and the distance heatmap.

A plain grid is exactly what `torchvision.utils.save_image` writes: `rows x cols` cells of H x W pixels
with PADDING pixels of white between and around them (see grid_size). The labelled version adds row
labels on the left, column labels on top (only where they fit in a cell) and a title, drawn with PIL's
default font."""
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid, save_image

from segma_bench.core.storage import atomic_write_file, atomic_write_text

PADDING = 2
PAD_VALUE = 1.0            # white lines between the cells
TEXT_GAP = 4               # pixels around drawn text
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)


def grid_size(n_rows, n_cols, image_hw, padding=PADDING):
    """(width, height) in pixels of the PNG that save_image writes for a rows x cols grid."""
    h, w = image_hw
    return n_cols * (w + padding) + padding, n_rows * (h + padding) + padding


def save_grid(images, path, n_cols, padding=PADDING):
    """Save images (N, C, H, W) in [0, 1], row-major, as a grid with `n_cols` columns."""
    path = Path(path)
    atomic_write_file(path, lambda tmp: save_image(images.detach().cpu().float().clamp(0, 1), tmp, nrow=n_cols,
                                                   padding=padding, pad_value=PAD_VALUE, format="png"))
    return path


def grid_image(images, n_cols, padding=PADDING):
    """The same grid as save_grid, as a PIL RGB image (save_image's rounding: x * 255 + 0.5)."""
    grid = make_grid(images.detach().cpu().float().clamp(0, 1), nrow=n_cols, padding=padding,
                     pad_value=PAD_VALUE)
    array = grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
    return Image.fromarray(array).convert("RGB")


def write_caption(png_path, text):
    """Caption beside the PNG: same name, .txt."""
    path = Path(png_path).with_suffix(".txt")
    atomic_write_text(path, text.rstrip() + "\n")
    return path


def font():
    return ImageFont.load_default()


def text_size(draw, text, fnt):
    if not text:
        return 0, 0
    left, top, right, bottom = draw.textbbox((0, 0), text, font=fnt)
    return right - left, bottom - top


def _measure(texts):
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    fnt = font()
    sizes = [text_size(draw, t, fnt) for t in texts]
    line_height = max([h for _, h in sizes] + [text_size(draw, "Ag0", fnt)[1]])
    return sizes, line_height


def labelled(grid, n_rows, n_cols, image_hw, row_labels=None, col_labels=None, title=None,
             padding=PADDING):
    """Grid (PIL image from grid_image) with row labels left, column labels on top and a title above.
    Column labels are drawn only if every one fits its cell; otherwise the caption has to say them."""
    h, w = image_hw
    row_labels = list(row_labels or [])
    col_labels = list(col_labels or [])
    titles = [line for line in (title or "").splitlines() if line]
    (row_sizes, line_h) = _measure(row_labels)
    col_sizes, _ = _measure(col_labels)
    title_sizes, _ = _measure(titles)
    draw_cols = bool(col_labels) and all(cw <= w + padding for cw, _ in col_sizes)
    left = (max(cw for cw, _ in row_sizes) + 2 * TEXT_GAP) if row_labels else 0
    top = len(titles) * (line_h + TEXT_GAP) + (line_h + TEXT_GAP if draw_cols else 0) + (TEXT_GAP if titles
                                                                                         or draw_cols else 0)
    width = max(left + grid.width, max([tw for tw, _ in title_sizes] + [0]) + 2 * TEXT_GAP)
    canvas = Image.new("RGB", (width, top + grid.height), BACKGROUND)
    canvas.paste(grid, (left, top))
    draw = ImageDraw.Draw(canvas)
    fnt = font()
    y = TEXT_GAP
    for line in titles:
        draw.text((TEXT_GAP, y), line, fill=INK, font=fnt)
        y += line_h + TEXT_GAP
    if draw_cols:
        for j, (label, (cw, _)) in enumerate(zip(col_labels, col_sizes)):
            x = left + padding + j * (w + padding) + (w - cw) // 2
            draw.text((x, y), label, fill=INK, font=fnt)
    for i, (label, (cw, _)) in enumerate(zip(row_labels, row_sizes)):
        y_row = top + padding + i * (h + padding) + (h - line_h) // 2
        draw.text((left - TEXT_GAP - cw, y_row), label, fill=INK, font=fnt)
    return canvas


def side_by_side(panels, titles, gap=12):
    """Panels (PIL images) next to each other, bottom-aligned, each with its title below ('(a) SeGMA')."""
    sizes, line_h = _measure(titles)
    height = max(p.height for p in panels) + line_h + 3 * TEXT_GAP
    widths = [max(p.width, tw + 2 * TEXT_GAP) for p, (tw, _) in zip(panels, sizes)]
    canvas = Image.new("RGB", (sum(widths) + gap * (len(panels) - 1), height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    fnt = font()
    x = 0
    top = max(p.height for p in panels)
    for panel, title, width, (tw, _) in zip(panels, titles, widths, sizes):
        canvas.paste(panel, (x + (width - panel.width) // 2, top - panel.height))
        draw.text((x + (width - tw) // 2, top + TEXT_GAP), title, fill=INK, font=fnt)
        x += width + gap
    return canvas


# A sequential colour map (dark blue = close ... yellow = far), linear between these anchors.
COLOUR_ANCHORS = torch.tensor([[40, 30, 110], [40, 110, 160], [50, 170, 120], [180, 210, 60], [250, 230, 40]],
                              dtype=torch.float64)


def colour_map(values):
    """Values in [0, 1] -> RGB uint8, shape (..., 3)."""
    v = values.double().clamp(0, 1) * (len(COLOUR_ANCHORS) - 1)
    low = v.floor().long().clamp(max=len(COLOUR_ANCHORS) - 2)
    frac = (v - low).unsqueeze(-1)
    rgb = COLOUR_ANCHORS[low] * (1 - frac) + COLOUR_ANCHORS[low + 1] * frac
    return rgb.round().to(torch.uint8)


def heatmap(matrix, labels, cell=36, title=None):
    """K x K matrix as coloured cells (nearest-neighbour upscaled) with the value written in each cell and
    the labels along both axes. The colour scale spans the off-diagonal minimum..maximum; the diagonal is
    grey."""
    matrix = torch.as_tensor(matrix, dtype=torch.float64).cpu()
    k = len(matrix)
    off = ~torch.eye(k, dtype=torch.bool)
    lo, hi = (matrix[off].min(), matrix[off].max()) if k > 1 else (torch.tensor(0.0), torch.tensor(1.0))
    scaled = (matrix - lo) / (hi - lo) if hi > lo else torch.zeros_like(matrix)
    colours = colour_map(scaled)
    colours[~off] = torch.tensor([200, 200, 200], dtype=torch.uint8)
    cells = colours.repeat_interleave(cell, 0).repeat_interleave(cell, 1)  # nearest-neighbour upscale
    body = Image.fromarray(cells.numpy(), "RGB")
    draw = ImageDraw.Draw(body)
    fnt = font()
    for i in range(k):
        for j in range(k):
            text = f"{matrix[i, j]:.2f}"
            tw, th = text_size(draw, text, fnt)
            dark = sum(int(c) for c in colours[i, j]) < 360
            draw.text((j * cell + (cell - tw) // 2, i * cell + (cell - th) // 2 - 2), text,
                      fill=(255, 255, 255) if dark else INK, font=fnt)
    grid_like = Image.new("RGB", (body.width + 2 * PADDING, body.height + 2 * PADDING), BACKGROUND)
    grid_like.paste(body, (PADDING, PADDING))
    image = labelled(grid_like, k, k, (cell - PADDING, cell - PADDING), row_labels=labels,
                     col_labels=labels, title=title)
    return image
