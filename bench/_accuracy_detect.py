"""Face detection rate by face size and light level, on real faces scaled down and darkened.

Each source is a real face the detector found in a real photo or clip frame
(``_accuracy_faces.collect``) with some picture around it (``MIN_MARGIN``: tight stock crops are
left out and listed), at most ``PER_PERSON`` per person so that one person's 22 photos do not
outweigh everyone else. For each face size (the shorter side of its box, in a 640x480 frame)
and each light gain, the photo around the face (the box grown by ``CONTEXT`` of its size on every
side: hair, neck, some background) is scaled *down* to that size (never up: a source smaller than
the size is left out of that cell), pasted with a feathered edge at the centre of a real photo
without people (``fixtures/negatives/iceblock_no_face.jpg``, scaled to 640x480), and the whole
frame multiplied by the gain (clipped to 255): the same kind of transformation the fixture builder
makes (``fixtures/build_fixtures.py``: the walk-in's cut-out, the dark clip's gain).

Counted per cell: **detected** (a BlazeFace box overlapping the placed face, IoU >= 0.3), **found**
(also confirmed by the face mesh: a face as the pipeline counts it) and **embeddable** (also
passing the live identity gates). Only faces found in the original are sources, so the rates
measure what size and light take away, not the detector's misses on the originals (those are in
the identity coverage). A darkened photo keeps a photo's low noise: a dark room's camera adds
noise and blur, so the rates at low gains are optimistic.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import cv2
import numpy as np

from bench import ROOT
from bench._accuracy_faces import FaceSampler, Source
from bench._accuracy_people import PEOPLE

SIZES = (24, 32, 40, 48, 60, 80, 120, 160)  # at gain 1.0
GAINS = (0.1, 0.2, 0.35, 0.5, 1.0, 1.6, 2.5)  # at sizes 120 and 48 (a face close by, one far away)
CELLS = tuple(
    sorted({(size, 1.0) for size in SIZES} | {(size, gain) for size in (48, 120) for gain in GAINS})
)
QUICK_CELLS = ((40, 1.0), (120, 0.2), (120, 1.0))
WIDTH, HEIGHT = 640, 480
CONTEXT = 1.0
MIN_MARGIN = 0.3  # a source needs this much picture (of the face's size) left, right and above it
FEATHER = 0.05  # of the patch's shorter side: the pasted edge fades over this (inside the margin)
PER_PERSON = 2
MIN_IOU = 0.3
BACKGROUND = ROOT / "fixtures" / "negatives" / "iceblock_no_face.jpg"


def background() -> np.ndarray:
    image = cv2.imread(str(BACKGROUND), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{BACKGROUND}: missing (a fixture in git)")
    scale = max(WIDTH / image.shape[1], HEIGHT / image.shape[0])
    image = cv2.resize(
        image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA
    )
    y0, x0 = (image.shape[0] - HEIGHT) // 2, (image.shape[1] - WIDTH) // 2
    return np.ascontiguousarray(image[y0 : y0 + HEIGHT, x0 : x0 + WIDTH])


def place(
    source: Source, size: int, canvas: np.ndarray
) -> tuple[np.ndarray, tuple[float, float, float, float]] | None:
    """The canvas with the source's face scaled to ``size`` px at its centre, and the face's box."""
    x, y, w, h = source.box
    f = size / min(w, h)
    if f > 1.0:
        return None
    img_h, img_w = source.image.shape[:2]
    rx0, ry0 = max(0, int(x - CONTEXT * w)), max(0, int(y - CONTEXT * h))
    rx1, ry1 = min(img_w, int(x + w + CONTEXT * w)), min(img_h, int(y + h + CONTEXT * h))
    patch = source.image[ry0:ry1, rx0:rx1]
    pw, ph = max(1, round(patch.shape[1] * f)), max(1, round(patch.shape[0] * f))
    patch = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA).astype(np.float32)
    # the face centre goes to the canvas centre
    ox = round(WIDTH / 2 - (x + w / 2 - rx0) * f)
    oy = round(HEIGHT / 2 - (y + h / 2 - ry0) * f)
    alpha = _feather(pw, ph)
    out = canvas.astype(np.float32)
    cx0, cy0, cx1, cy1 = max(0, ox), max(0, oy), min(WIDTH, ox + pw), min(HEIGHT, oy + ph)
    sub = (slice(cy0 - oy, cy1 - oy), slice(cx0 - ox, cx1 - ox))
    a = alpha[sub][..., None]
    out[cy0:cy1, cx0:cx1] = a * patch[sub] + (1 - a) * out[cy0:cy1, cx0:cx1]
    box = (WIDTH / 2 - w * f / 2, HEIGHT / 2 - h * f / 2, w * f, h * f)
    return np.clip(out, 0, 255).astype(np.uint8), box


def _feather(w: int, h: int) -> np.ndarray:
    """1 inside, falling linearly to 0 over the patch's outer ``FEATHER`` (no hard rectangle edge)."""
    k = max(2.0, FEATHER * min(w, h))
    xs = np.minimum(np.arange(w) + 0.5, w - np.arange(w) - 0.5) / k
    ys = np.minimum(np.arange(h) + 0.5, h - np.arange(h) - 0.5) / k
    return np.clip(np.minimum(ys[:, None], xs[None, :]), 0, 1).astype(np.float32)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw, ih = max(0.0, min(ax1, bx1) - max(a[0], b[0])), max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def has_margin(source: Source) -> bool:
    """Room around the face: a face that fills its picture (a tight stock crop) would be pasted with
    its own edge against the background, a frame no camera makes."""
    x, y, w, h = source.box
    img_w = source.image.shape[1]
    size = min(w, h)
    return min(x, y, img_w - (x + w)) >= MIN_MARGIN * size


def sources_per_person(sources: list[Source]) -> list[Source]:
    taken: Counter[str] = Counter()
    out = []
    for s in sources:
        if has_margin(s) and taken[s.person] < PER_PERSON:
            taken[s.person] += 1
            out.append(s)
    return out


def grid(sampler: FaceSampler, sources: list[Source], quick: bool) -> dict[str, Any]:
    chosen = QUICK_CELLS if quick else CELLS
    canvas = background()
    used = sources_per_person(sources)
    cells = []
    for size in sorted({size for size, _gain in chosen}):
        placed = [(s, p) for s in used if (p := place(s, size, canvas)) is not None]
        for gain in sorted(gain for sz, gain in chosen if sz == size):
            cell: dict[str, Any] = {"size": size, "gain": gain, "n": len(placed), "detected": 0, "found": 0}
            cell["embeddable"] = 0
            groups: dict[str, dict[str, list[int]]] = {"skin": {}, "age": {}}
            lumas = []
            for source, (image, box) in placed:
                lit = np.clip(image.astype(np.float32) * gain, 0, 255).astype(np.uint8)
                x, y, w, h = (round(v) for v in box)
                lumas.append(float(cv2.cvtColor(lit[y : y + h, x : x + w], cv2.COLOR_BGR2GRAY).mean()))
                hits = [(b, f) for b, f, _p in sampler.assess(lit) if _iou(b, box) >= MIN_IOU]
                detected = bool(hits)
                found = any(f is not None for _b, f in hits)
                embeddable = any(f is not None and f.problem is None for _b, f in hits)
                cell["detected"] += detected
                cell["found"] += found
                cell["embeddable"] += embeddable
                person = PEOPLE[source.person]
                for field in groups:
                    row = groups[field].setdefault(getattr(person, field), [0, 0, 0])
                    row[0] += 1
                    row[1] += found
                    row[2] += embeddable
            cell["face_luma_median"] = round(float(np.median(lumas)), 1) if lumas else None
            cell["by"] = {
                field: {g: {"n": v[0], "found": v[1], "embeddable": v[2]} for g, v in sorted(rows.items())}
                for field, rows in groups.items()
            }
            cells.append(cell)
    return {
        "background": str(BACKGROUND.relative_to(ROOT)),
        "sources": len(used),
        "left_out_no_margin": sorted({s.origin for s in sources if not has_margin(s)}),
        "people": len({s.person for s in used}),
        "sources_by_skin": dict(Counter(PEOPLE[s.person].skin for s in used)),
        "sources_by_age": dict(Counter(PEOPLE[s.person].age for s in used)),
        "sizes": sorted({size for size, _gain in chosen}),
        "gains": sorted({gain for _size, gain in chosen}),
        "cells": cells,
    }
