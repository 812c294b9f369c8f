"""The printed table of ``bench.accuracy`` (rows of [what, value, unit]) from its JSON."""

from __future__ import annotations

from typing import Any


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _ci(p: dict[str, Any]) -> str:
    return (
        "no trials" if not p["n"] else f"{p['k']}/{p['n']}, 95% CI {_pct(p['ci95'][0])}-{_pct(p['ci95'][1])}"
    )


def _per_hour(what: str, r: dict[str, Any] | None) -> list[Any]:
    if r is None:
        return [what, "-", "no media"]
    lo, hi = r["ci95_per_hour"]
    return [
        what,
        r["per_hour"],
        f"per hour ({r['events']} in {60 * r['hours']:.1f} min; 95% CI {lo:g}-{hi:g})",
    ]


def _times(what: str, p: dict[str, Any], extra: str = "") -> list[Any]:
    if not p["n"]:
        return [what, "-", f"none{extra}"]
    return [what, p["p50"], f"s p50; p95 {p['p95']}, max {p['max']} (n={p['n']}){extra}"]


def _calls(c: dict[str, Any]) -> list[list[Any]]:
    rows = []
    clean = c["clean_fixtures"]
    names = ", ".join(clean["scenarios"])
    rows.append(_per_hour(f"false pauses, clean fixtures looped ({names})", clean["false_pauses"]))
    rows.append(_per_hour("warnings (guidance), clean fixtures looped", clean["warnings"]))
    other = c["other_people"]
    rows.append(
        _per_hour(f"false pauses, {len(other['runs'])} other people's own clips", other["false_pauses"])
    )
    for p in other["pauses"]:
        rows.append([f"  paused: {p['person']}", p["t"], f"s into the clip ({', '.join(p['reasons'])})"])
    rows.append(_per_hour("false pauses, all clean footage", c["all_clean_footage"]))
    ttl = c["time_to_live"]
    never = f"; never live: {len(ttl['never_live'])}" if ttl["never_live"] else ""
    late = sum(1 for t in ttl["trials"] if t["live_t"] is not None and t["live_t"] > 3.0)
    never += f"; later than 3 s: {late} of {len(ttl['trials'])}"
    rows.append(_times(f"time to live, clean calls ({ttl['people']} people)", ttl["live_s"], never))
    i = c["intruder"]
    rows.append(
        _times("intruder walks in: paused after she enters", i["pause_s"], f"; paused {_ci(i['paused'])}")
    )
    rows.append(_times("intruder walks in: first alert after she enters", i["alert_s"]))
    imp = c["impostor"]
    went = f"; went live {_ci(imp['went_live'])}"
    rows.append(_times("impostor (another man's photo): paused after", imp["pause_s"], went))
    s = c["swap"]
    reasons = ", ".join(f"{k} {v}" for k, v in s["first_pause_reasons"].items())
    extra = f"; paused {_ci(s['paused'])} within {s['not_paused_within_s']:g} s; {reasons}"
    rows.append(_times("swap to another real person: paused after the cut", s["pause_s"], extra))
    for stranger, times in s["by_stranger"].items():
        shown = ", ".join("not paused" if t is None else f"{t:g}" for t in times)
        rows.append([f"  swap to {stranger}", shown, "s after the cut"])
    m = c["impostor_matrix"]
    counts = ", ".join(f"{k} {v}" for k, v in sorted(m["counts"].items()))
    who = f"ordered pairs of {m['people']} people ({counts}); people involved {_ci(m['false_accept_people'])}"
    rows.append(["impostor matrix: wrong person went live", _ci(m["false_accepts"]), who])
    return rows


def _detection(d: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for cell in d["cells"]:
        n = cell["n"]
        if not n:
            continue
        skin = ", ".join(f"{g} {v['found']}/{v['n']}" for g, v in cell["by"]["skin"].items())
        luma = cell["face_luma_median"]
        what = f"detection: face {cell['size']} px, light x{cell['gain']:g} (face luma {luma})"
        note = f"found of {n}; embeddable {_pct(cell['embeddable'] / n)}; by skin {skin}"
        rows.append([what, _pct(cell["found"] / n), note])
    return rows


def _identity(idn: dict[str, Any]) -> list[list[Any]]:
    a = idn["all"]
    rows = []
    for key, what in (
        ("false_non_match", "identity: genuine sample misses (false non-match)"),
        ("false_nobody_booked", "identity: genuine sample says 'nobody booked'"),
    ):
        r = a[key]
        note = f"of {r['comparisons']['n']} comparisons; people mostly missed {_ci(r['units_mostly_wrong'])}"
        rows.append([what, _pct(r["comparisons"]["rate"]), note])
    fm = a["false_match"]
    note = (
        f"{fm['comparisons']['k']} of {fm['comparisons']['n']}; pairs of people with any "
        f"{_ci(fm['units_any_wrong'])}; people in such a pair {_ci(a['false_match_people'])}"
    )
    rows.append(["identity: impostor sample matches (false match)", _pct(fm["comparisons"]["rate"]), note])
    und = a["impostor_undecided"]
    note = f"pairs of people mostly undecided {_ci(und['units_mostly_wrong'])}"
    rows.append(["identity: impostor sample undecided (grey zone)", _pct(und["comparisons"]["rate"]), note])
    for person, r in idn["genuine_by_person"].items():
        session = "same-session reference" if r["reference_from_same_session"] else "other-session reference"
        note = (
            f"median distance; misses {_pct(r['false_non_match'])}, 'nobody booked' "
            f"{_pct(r['false_nobody_booked'])} of {r['comparisons']} ({r['skin']} {r['sex']}, {session})"
        )
        rows.append([f"  genuine {person}", r["median_distance"], note])
    for field in ("skin", "age"):
        cov = idn["coverage"][field]
        for group, v in idn["by"][field].items():
            same = v["same_group"]
            miss = same["false_non_match"]
            c = cov.get(group, {})
            note = (
                f"{c.get('embeddable_people', 0)} embeddable, {c.get('people_with_genuine_pairs', 0)} with "
                f"genuine pairs; misses {_ci(miss['comparisons'])} "
                f"(by person {_ci(miss['units_mostly_wrong'])}); "
                f"same-group false matches {_ci(same['false_match']['comparisons'])} over "
                f"{same['impostor_pairs']} pairs"
            )
            rows.append([f"identity by {field}: {group}", f"{c.get('people', 0)} people", note])
    return rows


def table(result: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    if "calls" in result:
        rows += _calls(result["calls"])
    if "detection" in result:
        rows += _detection(result["detection"])
    if "identity" in result:
        rows += _identity(result["identity"])
    missing = result.get("missing_media", [])
    rows.append(
        ["media missing from the cache", len(missing), ", ".join(m["file"] for m in missing) or "none"]
    )
    return rows
