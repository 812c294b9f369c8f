"""The enrolled people: reference embeddings per booked person (picklable, sent to workers)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True, eq=False)
class EnrolledPerson:
    id: str
    embeddings: tuple[np.ndarray, ...]  # 128-d float64, one per reference photo


@dataclass(frozen=True, slots=True, eq=False)
class Enrolment:
    people: tuple[EnrolledPerson, ...] = ()

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.people)

    def distances(self, embedding: np.ndarray) -> dict[str, float]:
        """Distance from ``embedding`` to each person: the closest of their reference embeddings."""
        return {
            p.id: float(min(np.linalg.norm(e - embedding) for e in p.embeddings))
            for p in self.people
            if p.embeddings
        }
