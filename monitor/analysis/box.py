"""Axis-aligned boxes in pixel coordinates, shared by every stage."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Box:
    """x, y (top-left), w, h in pixels. May extend past the frame (a face cut by the edge)."""

    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @property
    def area(self) -> float:
        return max(0.0, self.w) * max(0.0, self.h)

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0.0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def clipped(self, width: int, height: int) -> Box:
        x0, y0 = max(0.0, self.x), max(0.0, self.y)
        x1, y1 = min(float(width), self.x + self.w), min(float(height), self.y + self.h)
        return Box(x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))

    def inside_fraction(self, width: int, height: int) -> float:
        """Share of the box's area that lies inside a ``width`` x ``height`` frame."""
        return self.clipped(width, height).area / self.area if self.area > 0 else 0.0

    def normalised(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The part inside the frame as x, y, w, h in 0..1 (the Observation's box)."""
        c = self.clipped(width, height)
        return (c.x / width, c.y / height, c.w / width, c.h / height)

    def square(self, scale: float) -> Box:
        """A square box of side ``scale`` x the longer side, on the same centre."""
        side = max(self.w, self.h) * scale
        return Box(self.cx - side / 2, self.cy - side / 2, side, side)

    def pixel_slices(self, width: int, height: int) -> tuple[slice, slice]:
        """Row and column slices of the part inside the frame (for numpy indexing)."""
        c = self.clipped(width, height)
        return slice(int(c.y), round(c.y + c.h)), slice(int(c.x), round(c.x + c.w))
