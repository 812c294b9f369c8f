"""Identity error rates for ``bench.accuracy`` from real faces, with bounds set by the people counted.

Comparisons: every *reference* (a photo or frame that passes enrolment's gates, standing as a
booked person's photo) against every *probe* (an embeddable face of a still or a clip frame), one
booked person at a time (a call with one visitor; with more, the margin rule only adds misses).
Genuine: the same person in a different picture. Impostor: different people.

Per comparison, as one identity sample votes (``monitor/analysis/identity.py``):

- **false non-match**: genuine, distance > ``match_distance`` (the sample does not vote for them);
- **false "nobody booked"**: genuine, distance > ``unbooked_distance`` (the sample votes that a
  stranger is in view: three of those pause a genuine visitor as ``unbooked_face``);
- **false match**: impostor, distance <= ``match_distance`` (the sample votes for the booked person);
- **impostor undecided**: impostor in the grey zone between the two (no vote either way).

Bounds (``_accuracy_stats.unit_rate``): genuine comparisons are grouped by person, impostor ones by
pair of people, and the Clopper-Pearson interval is taken over those units, not over comparisons:
30 frames of one man are one man. Pairs of people still share people, so a third, most cautious
bound counts only people: each person with any false match against anyone is one error in n people.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from bench._accuracy_faces import Sample
from bench._accuracy_people import PEOPLE, SAME_SESSION
from bench._accuracy_stats import proportion, unit_rate

GROUPS = ("skin", "age", "sex")


def _distance(a: Sample, b: Sample) -> float:
    assert a.embedding is not None and b.embedding is not None
    return float(np.linalg.norm(a.embedding - b.embedding))


def unique(samples: list[Sample]) -> list[Sample]:
    """One sample per (person, picture): a reference photo listed as a still and for a clip counts once."""
    seen: dict[tuple[str, str], Sample] = {}
    for s in samples:
        key = (s.person, s.origin)
        if key not in seen or (s.reference and not seen[key].reference):
            seen[key] = s
    return list(seen.values())


def comparisons(samples: list[Sample]) -> list[tuple[Sample, Sample, float]]:
    """(reference, probe, distance) for every reference and every other embeddable picture."""
    refs = [s for s in samples if s.reference and s.embeddable]
    probes = [s for s in samples if s.embeddable]
    return [(r, p, _distance(r, p)) for r in refs for p in probes if p.origin != r.origin]


def _rates(pairs: list[tuple[Sample, Sample, float]], match: float, unbooked: float) -> dict[str, Any]:
    genuine: dict[str, list[float]] = {}
    impostor: dict[tuple[str, str], list[float]] = {}
    for r, p, d in pairs:
        if r.person == p.person:
            genuine.setdefault(r.person, []).append(d)
        else:
            impostor.setdefault((min(r.person, p.person), max(r.person, p.person)), []).append(d)
    fm_people = {x for pair, ds in impostor.items() if any(d <= match for d in ds) for x in pair}
    people_in_impostor = {x for pair in impostor for x in pair}
    return {
        "genuine_people": len(genuine),
        "genuine_comparisons": sum(len(v) for v in genuine.values()),
        "impostor_people": len(people_in_impostor),
        "impostor_pairs": len(impostor),
        "impostor_comparisons": sum(len(v) for v in impostor.values()),
        "false_non_match": unit_rate({k: [d > match for d in v] for k, v in genuine.items()}),
        "false_nobody_booked": unit_rate({k: [d > unbooked for d in v] for k, v in genuine.items()}),
        "false_match": unit_rate({k: [d <= match for d in v] for k, v in impostor.items()}),
        "false_match_people": proportion(len(fm_people), len(people_in_impostor)),
        "impostor_undecided": unit_rate({k: [match < d <= unbooked for d in v] for k, v in impostor.items()}),
        "genuine_distance": _spread([d for v in genuine.values() for d in v]),
        "impostor_distance": _spread([d for v in impostor.values() for d in v]),
    }


def _spread(ds: list[float]) -> dict[str, Any]:
    if not ds:
        return {"n": 0}
    q = np.percentile(ds, [0, 5, 50, 95, 100])
    return {"n": len(ds)} | {
        k: round(float(v), 3) for k, v in zip(("min", "p5", "median", "p95", "max"), q, strict=True)
    }


def _group_of(person: str, field: str) -> str:
    return str(getattr(PEOPLE[person], field))


def _split(
    pairs: list[tuple[Sample, Sample, float]],
    keep: Callable[[Sample, Sample], bool],
    match: float,
    unbooked: float,
) -> dict[str, Any]:
    return _rates([x for x in pairs if keep(x[0], x[1])], match, unbooked)


def _both_in(field: str, group: str) -> Callable[[Sample, Sample], bool]:
    return lambda r, p: _group_of(r.person, field) == group == _group_of(p.person, field)


def _probe_in(field: str, group: str) -> Callable[[Sample, Sample], bool]:
    return lambda _r, p: _group_of(p.person, field) == group


def report(samples: list[Sample], match: float, unbooked: float) -> dict[str, Any]:
    samples = unique(samples)
    pairs = comparisons(samples)
    out: dict[str, Any] = {
        "match_distance": match,
        "unbooked_distance": unbooked,
        "all": _rates(pairs, match, unbooked),
        "closest_impostor_pairs": _closest(pairs),
        "genuine_by_person": _by_person(pairs, match, unbooked),
        "by": {},
        "coverage": coverage(samples),
    }
    for field in GROUPS:
        groups = sorted({_group_of(p, field) for p in PEOPLE})
        out["by"][field] = {
            g: {
                # genuine comparisons of people in g; impostor comparisons where both people are in g
                # (the pairs that look most alike: NIST FRVT's same-demographic false matches)
                "same_group": _split(pairs, _both_in(field, g), match, unbooked),
                # every comparison whose probe (the face on camera) is in g
                "probe_in_group": _split(pairs, _probe_in(field, g), match, unbooked),
            }
            for g in groups
        }
    return out


def _by_person(pairs: list[tuple[Sample, Sample, float]], match: float, unbooked: float) -> dict[str, Any]:
    """Each person's genuine comparisons: how far their pictures sit from their own references."""
    per: dict[str, list[float]] = {}
    for r, p, d in pairs:
        if r.person == p.person:
            per.setdefault(r.person, []).append(d)
    return {
        person: {
            "skin": PEOPLE[person].skin,
            "age": PEOPLE[person].age,
            "sex": PEOPLE[person].sex,
            "reference_from_same_session": person in SAME_SESSION,
            "comparisons": len(ds),
            "median_distance": round(float(np.median(ds)), 3),
            "max_distance": round(max(ds), 3),
            "false_non_match": round(sum(d > match for d in ds) / len(ds), 3),
            "false_nobody_booked": round(sum(d > unbooked for d in ds) / len(ds), 3),
        }
        for person, ds in sorted(per.items())
    }


def _closest(pairs: list[tuple[Sample, Sample, float]], n: int = 5) -> list[dict[str, Any]]:
    """The closest impostor comparisons, to be looked at by a person: a stock photo may show the
    same model twice under two labels."""
    impostors = sorted((d, r.origin, p.origin) for r, p, d in pairs if r.person != p.person)
    seen: set[frozenset[str]] = set()
    out = []
    for d, a, b in impostors:
        key = frozenset((a, b))
        if key in seen:
            continue
        seen.add(key)
        out.append({"distance": round(d, 3), "reference": a, "probe": b})
        if len(out) == n:
            break
    return out


def _coverage_row() -> dict[str, Any]:
    return {"people": set(), "pictures": 0, "found": 0, "embeddable": 0, "references": 0, "not_used": {}}


def coverage(samples: list[Sample]) -> dict[str, Any]:
    """How many people, pictures and embeddable faces each group has, and why faces were not used."""
    out: dict[str, Any] = {}
    for field in GROUPS:
        rows: dict[str, dict[str, Any]] = {}
        for s in samples:
            g = _group_of(s.person, field)
            row = rows.setdefault(g, _coverage_row())
            row["people"].add(s.person)
            row["pictures"] += 1
            row["found"] += s.face is not None
            row["embeddable"] += s.embeddable
            row["references"] += s.reference and s.embeddable
            why = s.note if s.face is None else s.face.problem
            if why:
                why = why.split(" (")[0]
                row["not_used"][why] = row["not_used"].get(why, 0) + 1
        for g, row in rows.items():
            people = row.pop("people")
            embeddable_people = {
                s.person for s in samples if s.embeddable and _group_of(s.person, field) == g
            }
            with_pairs = {
                p for p in embeddable_people if sum(1 for s in samples if s.person == p and s.embeddable) >= 2
            }
            row.update(
                people=len(people),
                embeddable_people=len(embeddable_people),
                people_with_genuine_pairs=len(with_pairs),
            )
        out[field] = dict(sorted(rows.items()))
    out["people"] = len({s.person for s in samples})
    out["pairs_of_people"] = len(list(itertools.combinations({s.person for s in samples if s.embeddable}, 2)))
    return out
