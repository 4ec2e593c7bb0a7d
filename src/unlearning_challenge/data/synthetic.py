"""A synthetic face-age dataset, drawn procedurally from a seed.

Every image is a cartoon face rasterized with numpy only: head (an egg-shaped
ellipse), ears, neck and clothes, hair (colour, volume, hairline, fringe, long
hair behind the head, receding hairline), eyes (sclera, iris, pupil, lid),
eyebrows, nose shading, mouth, optional beard and glasses, and age cues:

* children (under 20) have rounder and relatively larger heads, eyes set
  lower and larger, smaller noses and mouths, rosy cheeks, thin eyebrows;
  babies have little, light hair; teenagers (about 12-20) have acne; faces
  lengthen and jaws narrow up to 30;
* age marks appear at set ages (a few years' jitter per person) and darken
  over about ten years: forehead lines (from 27, 36 and 46), crow's feet (33),
  nasolabial folds (40), eye bags (47), marionette lines (55), age spots (63);
* hair and eyebrows grey from a person-specific onset (45 +- 5 years), the
  grey whitening with age; after 60 hair thins and the hairline recedes;
* lips thin, eyelids droop, skin turns paler and less saturated, the face
  broadens slightly with age; glasses and beards become more common.

Each image is drawn at ``ss`` times the output resolution (at least 64x64)
and average-pooled to ``cfg.image_size`` (anti-aliasing). Pose (rotation,
offset, scale), expression (smile, open mouth, eye openness, raised brows,
gaze), lighting (brightness, gradient, colour cast) and pixel noise vary from
image to image; identity traits (face shape, colours, hair style,
background, clothes) are the person's.

Age groups are decades, as the real data's groups are equal-width age bins:
group ``g`` holds ages ``10*g .. 10*g+9`` for ``g`` in 0..8 and group 9 holds
90 and over (synthetic ages stop at 99). Persons are spread over the groups
with a decreasing share (weights ``0.8**g``: most persons are young; every
group gets at least ``min(3, num_persons // 10)`` persons).

Hard cases, so that a trained network must memorize part of its training set:

* ``atypical_fraction`` of the persons look atypical: ``age_look`` (drawn at an
  age at least two groups away, or prematurely grey), ``colour`` (dyed hair of
  an unusual colour, a strong colour cast, or a greyscale photo) or
  ``occlusion`` (sunglasses, a hat hiding the hair, or a face mask, on about
  85% of their images);
* ``label_noise`` of the persons have a wrong recorded label: their recorded
  age (and age group) is moved to a neighbouring group (70%) or to any other
  group (30%), while they are drawn at their true age. The recorded ``age``
  always lies in the recorded ``age_group``.

:func:`sample_persons` returns these per-person facts without drawing images.

Everything is drawn from ``numpy.random.Generator(PCG64(cfg.seed))``. Pixel
work uses only additions, multiplications, divisions and comparisons on
float32 (per-image parameters are first rounded to a 2**-20 grid), so the
bytes do not depend on the CPU's vector instructions.

The ``_draw_*`` functions draw at random, in a fixed order: the persons, each
person's looks, then each image's parameters (:class:`_FaceParams`). The
``_paint_*`` functions draw the faces from those parameters, back to front.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from unlearning_challenge.config import DatasetConfig
from unlearning_challenge.data.dataset import NUM_AGE_GROUPS, DataError, FaceDataset

# Lower edge (years) of each age group; group g is [edge[g], edge[g+1]).
AGE_GROUP_EDGES = tuple(10 * g for g in range(NUM_AGE_GROUPS))
MAX_SYNTHETIC_AGE = 99
# Share of persons per (true) age group, before label noise: decreasing.
GROUP_WEIGHTS = tuple(0.8**g for g in range(NUM_AGE_GROUPS))
ATYPICAL_KINDS = ("none", "age_look", "colour", "occlusion")

_CHUNK = 64  # images rendered together


def age_group_label(group: int) -> str:
    """Human-readable year range of a synthetic/CSV age group, e.g. ``'30-39'``."""
    if not 0 <= group < NUM_AGE_GROUPS:
        raise ValueError(f"age group must be in 0..{NUM_AGE_GROUPS - 1}, got {group}")
    if group == NUM_AGE_GROUPS - 1:
        return f"{AGE_GROUP_EDGES[group]}+"
    return f"{AGE_GROUP_EDGES[group]}-{AGE_GROUP_EDGES[group + 1] - 1}"


def age_to_group(age: np.ndarray | int) -> np.ndarray:
    """Age group (int64) of ages in years with the decade bins above.

    Negative ages raise ``ValueError``.
    """
    arr = np.asarray(age)
    if arr.size and np.min(arr) < 0:
        raise ValueError(f"ages must be >= 0, got {np.min(arr)}")
    return (np.searchsorted(np.asarray(AGE_GROUP_EDGES), arr, side="right") - 1).astype(np.int64)


@dataclass(frozen=True)
class SyntheticPersons:
    """The persons of a synthetic dataset (one entry per person).

    ``age``/``age_group`` are the recorded labels (after label noise);
    ``true_age``/``true_group`` the age the person is drawn at (unless
    atypical); ``appearance_age`` the age their face shows (float years).
    """

    person_id: np.ndarray
    age: np.ndarray
    age_group: np.ndarray
    true_age: np.ndarray
    true_group: np.ndarray
    appearance_age: np.ndarray
    atypical_kind: np.ndarray  # int64 index into ATYPICAL_KINDS
    label_flipped: np.ndarray  # bool
    num_images: np.ndarray


def check_synthetic_config(cfg: DatasetConfig) -> None:
    """Raise :class:`DataError` for settings a synthetic dataset cannot have."""
    if cfg.num_persons < NUM_AGE_GROUPS:
        raise DataError(
            f"synthetic dataset: num_persons must be at least {NUM_AGE_GROUPS} "
            f"(one per age group), got {cfg.num_persons}"
        )
    if cfg.min_images_per_person < 1:
        raise DataError(f"synthetic dataset: min_images_per_person must be >= 1, got {cfg.min_images_per_person}")
    if cfg.max_images_per_person < cfg.min_images_per_person:
        raise DataError(
            "synthetic dataset: max_images_per_person "
            f"({cfg.max_images_per_person}) is below min_images_per_person ({cfg.min_images_per_person})"
        )
    if cfg.image_size < 8:
        raise DataError(f"synthetic dataset: image_size must be at least 8, got {cfg.image_size}")
    for key in ("label_noise", "atypical_fraction"):
        value = getattr(cfg, key)
        if not 0 <= value <= 1:
            raise DataError(f"synthetic dataset: {key} must be in [0, 1], got {value}")


def _group_counts(n: int) -> np.ndarray:
    """Persons per true age group: largest remainder on GROUP_WEIGHTS, each at least min(3, n // 10)."""
    w = np.asarray(GROUP_WEIGHTS) / sum(GROUP_WEIGHTS)
    raw = w * n
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    floor = min(3, n // NUM_AGE_GROUPS)
    for g in range(NUM_AGE_GROUPS):
        while counts[g] < floor:
            counts[int(np.argmax(counts))] -= 1
            counts[g] += 1
    return counts


def _ages_in_group(rng: np.random.Generator, groups: np.ndarray) -> np.ndarray:
    """A whole age (int64) drawn uniformly in each of the age ``groups``."""
    lo = np.asarray(AGE_GROUP_EDGES)[groups]
    hi = np.where(groups == NUM_AGE_GROUPS - 1, MAX_SYNTHETIC_AGE, lo + 9)
    return rng.integers(lo, hi + 1).astype(np.int64)


def _on_grid(x: np.ndarray) -> np.ndarray:
    """Round to a 2**-20 grid (so that last-bit differences of libm vanish), float32."""
    return (np.round(np.asarray(x, dtype=np.float64) * 1048576.0) / 1048576.0).astype(np.float32)


@dataclass(frozen=True)
class _FaceParams:
    """What each of ``M`` images is drawn with: float32 arrays on a 2**-20 grid.

    Shapes are ``[M]``, ``[M, 3]`` for RGB colours (0..1) and ``[M, K, 2]``
    for spot positions (u, v). The head's size and offset are in frame units
    (the image spans -1..1); the features' positions and sizes in head units
    (``U`` in head half-widths, ``V`` in head half-heights, from the head's
    centre, ``V`` pointing down). Strengths, opacities and on/off switches are
    in 0..1. :meth:`rows` gives a chunk ready to broadcast against pixels.
    """

    # pose and head
    rotation_cos: np.ndarray
    rotation_sin: np.ndarray
    offset_x: np.ndarray  # head centre in frame units
    offset_y: np.ndarray
    head_half_width: np.ndarray  # frame units
    head_half_height: np.ndarray  # frame units
    chin_taper: np.ndarray  # how much narrower the head is towards the chin
    # colours [M, 3]
    skin_colour: np.ndarray
    hair_colour: np.ndarray
    brow_colour: np.ndarray
    iris_colour: np.ndarray
    lip_colour: np.ndarray
    clothes_colour: np.ndarray
    frame_colour: np.ndarray  # glasses
    hat_colour: np.ndarray
    mask_colour: np.ndarray
    background_colour: np.ndarray
    background_gradient: np.ndarray  # relative change per frame unit, downwards
    # eyes, brows, nose, mouth (head units)
    eye_y: np.ndarray
    eye_x: np.ndarray  # distance of each eye from the middle
    eye_half_width: np.ndarray
    eye_half_height: np.ndarray
    iris_radius: np.ndarray  # fraction of eye_half_width
    gaze: np.ndarray  # both irises move sideways by gaze * 0.35 eye half-widths
    brow_thickness: np.ndarray  # 1: an adult's
    brow_raise: np.ndarray
    nose_length: np.ndarray  # from the eyes down to the nostrils
    mouth_half_width: np.ndarray
    lip_thickness: np.ndarray  # 1: an adult's
    smile: np.ndarray  # curvature of the mouth: positive, corners up
    mouth_open: np.ndarray
    # age cues
    childhood: np.ndarray  # 1 at birth, 0 from 20
    ageing: np.ndarray  # 0 until 25, 1 at 90
    blush: np.ndarray
    acne: np.ndarray
    acne_spots: np.ndarray  # [M, 4, 2]
    forehead_lines: np.ndarray  # [M, 3], top line last
    crows_feet: np.ndarray
    eye_bags: np.ndarray
    nasolabial_folds: np.ndarray
    marionette_lines: np.ndarray
    age_spots: np.ndarray
    age_spot_positions: np.ndarray  # [M, 3, 2]
    # hair (head units)
    hair_volume: np.ndarray  # radius of the hair cap
    hairline: np.ndarray  # V of the hairline in the middle
    hairline_curve: np.ndarray  # how fast the hairline goes down at the sides
    hair_opacity: np.ndarray
    side_hair_length: np.ndarray  # V down to which the hair reaches at the sides
    long_hair_length: np.ndarray  # V down to which long hair falls behind the head (0: none)
    baldness: np.ndarray  # size of the bald top
    beard: np.ndarray
    # glasses and occlusions (0 or 1)
    glasses: np.ndarray
    sunglasses: np.ndarray
    hat: np.ndarray
    face_mask: np.ndarray
    # the photo: applied after pooling
    light: np.ndarray  # [M, 3] brightness times colour cast
    light_gradient_x: np.ndarray  # relative change per frame unit
    light_gradient_y: np.ndarray
    greyscale: np.ndarray
    noise_amplitude: np.ndarray  # grey levels (of 255)

    def quantized(self) -> "_FaceParams":
        """Every array rounded to the 2**-20 grid, as float32."""
        return _FaceParams(**{f.name: _on_grid(getattr(self, f.name)) for f in fields(self)})

    def rows(self, start: int, stop: int) -> "_FaceParams":
        """Images ``start:stop`` (``B`` of them), each array with a pixel axis after the image axis:
        ``[B, 1]``, ``[B, 1, 3]``, ``[B, 1, K, 2]``."""
        return _FaceParams(**{f.name: getattr(self, f.name)[start:stop, None] for f in fields(self)})


# Colour palettes (RGB in 0..1).
_SKIN_TONES = np.array(
    [[0.99, 0.87, 0.76], [0.93, 0.76, 0.62], [0.80, 0.58, 0.43], [0.58, 0.38, 0.25], [0.38, 0.25, 0.17]]
)  # light to dark
_HAIR_COLOURS = np.array(
    [
        [0.06, 0.05, 0.05],  # black
        [0.20, 0.12, 0.07],  # dark brown
        [0.38, 0.24, 0.13],  # brown
        [0.58, 0.42, 0.25],  # light brown
        [0.85, 0.72, 0.45],  # blond
        [0.62, 0.26, 0.10],  # red
    ]
)
_DYED_HAIR_COLOURS = np.array(
    [[0.15, 0.35, 0.95], [0.95, 0.25, 0.65], [0.2, 0.8, 0.35], [0.55, 0.2, 0.85], [1.0, 0.5, 0.05]]
)
_EYE_COLOURS = np.array(
    [[0.25, 0.14, 0.06], [0.12, 0.08, 0.05], [0.25, 0.45, 0.75], [0.3, 0.5, 0.3], [0.45, 0.45, 0.5]]
)  # two dark, then light


@dataclass(frozen=True)
class _AgeStages:
    """How far each of ``n`` faces is into each stage of life, in 0..1 ``[n]``."""

    childhood: np.ndarray  # 1 at birth, 0 from 20
    babyhood: np.ndarray  # 1 at birth, 0 from 3
    maturity: np.ndarray  # 0 until 14, 1 from 30
    ageing: np.ndarray  # 0 until 25, 1 at 90
    elderliness: np.ndarray  # 0 until 60, 1 at 90

    @classmethod
    def at(cls, age: np.ndarray) -> "_AgeStages":
        """The stages of faces that look ``age`` (float years ``[n]``)."""
        return cls(
            childhood=np.clip((20.0 - age) / 20.0, 0, 1),
            babyhood=np.clip((3.0 - age) / 3.0, 0, 1),
            maturity=np.clip((age - 14.0) / 16.0, 0, 1),
            ageing=np.clip((age - 25.0) / 65.0, 0, 1),
            elderliness=np.clip((age - 60.0) / 30.0, 0, 1),
        )


@dataclass(frozen=True)
class _Colours:
    """Each person's colours: RGB ``[n, 3]`` in 0..1."""

    skin: np.ndarray
    hair: np.ndarray
    brow: np.ndarray
    iris: np.ndarray
    lip: np.ndarray
    clothes: np.ndarray
    background: np.ndarray
    cast: np.ndarray  # a factor per channel on every photo: 1 but for the colour-atypical
    greyscale: np.ndarray  # bool [n]: greyscale photos


@dataclass(frozen=True)
class _FaceShape:
    """Each person's head and features ``[n]``: head units, but for the head's own size."""

    head_half_width: np.ndarray  # frame units, before each image's scale
    head_aspect: np.ndarray  # half-height / half-width
    chin_taper: np.ndarray
    eye_y: np.ndarray
    eye_x: np.ndarray
    eye_half_width: np.ndarray
    eye_aspect: np.ndarray  # half-height / half-width of an open eye
    iris_radius: np.ndarray  # fraction of eye_half_width
    brow_thickness: np.ndarray
    nose_length: np.ndarray
    mouth_half_width: np.ndarray
    lip_thickness: np.ndarray


@dataclass(frozen=True)
class _Hair:
    """Each person's hair ``[n]``, in head units (see :class:`_FaceParams`)."""

    volume: np.ndarray
    hairline: np.ndarray
    hairline_curve: np.ndarray
    opacity: np.ndarray
    side_length: np.ndarray
    long_length: np.ndarray
    baldness: np.ndarray


@dataclass(frozen=True)
class _AgeMarks:
    """How dark each person's age marks are, in 0..1 ``[n]``."""

    forehead_lines: np.ndarray  # [n, 3], top line last
    crows_feet: np.ndarray
    nasolabial_folds: np.ndarray
    eye_bags: np.ndarray
    marionette_lines: np.ndarray
    age_spots: np.ndarray


@dataclass(frozen=True)
class _Identity:
    """What stays the same in every image of each of ``n`` persons."""

    stages: _AgeStages
    colours: _Colours
    shape: _FaceShape
    hair: _Hair
    marks: _AgeMarks
    age_spot_positions: np.ndarray  # [n, 3, 2] (u, v)
    blush: np.ndarray  # [n]
    acne: np.ndarray  # [n]
    acne_spots: np.ndarray  # [n, 4, 2] (u, v)
    beard: np.ndarray  # [n] density, 0: none
    glasses: np.ndarray  # bool [n]
    frame_colour: np.ndarray  # [n, 3]
    sunglasses: np.ndarray  # bool [n], worn on most images
    hat: np.ndarray  # bool [n], worn on most images
    face_mask: np.ndarray  # bool [n], worn on most images


def _draw(cfg: DatasetConfig) -> tuple[SyntheticPersons, _FaceParams, int]:
    """The persons, what each image is drawn with, and the seed of the pixel noise, all from ``cfg.seed``."""
    check_synthetic_config(cfg)
    rng = np.random.Generator(np.random.PCG64(cfg.seed))
    persons, variant, premature_grey = _draw_persons(rng, cfg)
    identity = _draw_identity(rng, persons, variant, premature_grey)
    params = _draw_images(rng, identity, persons.num_images)
    noise_seed = int(rng.integers(0, 2**63, size=1, dtype=np.int64)[0])
    return persons, params, noise_seed


# --- who: ages, labels, hard cases


def _draw_persons(rng: np.random.Generator, cfg: DatasetConfig) -> tuple[SyntheticPersons, np.ndarray, np.ndarray]:
    """The persons; the variant of each one's atypical kind (uniform in [0, 1) ``[n]``) and who greys
    prematurely (bool ``[n]``)."""
    n = cfg.num_persons
    true_group = rng.permutation(np.repeat(np.arange(NUM_AGE_GROUPS), _group_counts(n))).astype(np.int64)
    true_age = _ages_in_group(rng, true_group)
    appearance_age = true_age + rng.random(n)  # continuous
    kind, variant, other_age = _draw_atypical(rng, cfg.atypical_fraction, true_group)
    looks_age = kind == ATYPICAL_KINDS.index("age_look")
    premature_grey = looks_age & (variant < 0.35) & (true_age >= 12) & (true_age < 45)
    appearance_age = np.where(looks_age & ~premature_grey, other_age, appearance_age)
    flipped, recorded_group, recorded_age = _draw_label_noise(rng, cfg.label_noise, true_group, true_age)
    num_images = rng.integers(cfg.min_images_per_person, cfg.max_images_per_person + 1, size=n).astype(np.int64)
    persons = SyntheticPersons(
        person_id=np.arange(n, dtype=np.int64),
        age=recorded_age,
        age_group=recorded_group,
        true_age=true_age,
        true_group=true_group,
        appearance_age=appearance_age,
        atypical_kind=kind,
        label_flipped=flipped,
        num_images=num_images,
    )
    return persons, variant, premature_grey


def _draw_atypical(rng: np.random.Generator, fraction: float,
                   true_group: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Who looks atypical: the kind (int64 index into ATYPICAL_KINDS ``[n]``), its variant (uniform in
    [0, 1) ``[n]``) and an age at least two groups away from the true one (float years ``[n]``)."""
    n = len(true_group)
    count = int(round(fraction * n))
    kind = np.zeros(n, dtype=np.int64)
    atypical = rng.choice(n, size=count, replace=False)
    kind[atypical] = rng.integers(1, len(ATYPICAL_KINDS), size=count)
    variant = rng.random(n)
    other_group = np.empty(n, dtype=np.int64)
    for i in range(n):
        choices = [g for g in range(NUM_AGE_GROUPS) if abs(g - true_group[i]) >= 2]
        other_group[i] = choices[int(rng.integers(len(choices)))]
    other_age = _ages_in_group(rng, other_group) + rng.random(n)
    return kind, variant, other_age


def _draw_label_noise(rng: np.random.Generator, fraction: float, true_group: np.ndarray,
                      true_age: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whose label is wrong (bool ``[n]``), and the recorded age group and age (int64 ``[n]``)."""
    n = len(true_group)
    flipped = np.zeros(n, dtype=bool)
    chosen = rng.choice(n, size=int(round(fraction * n)), replace=False)
    flipped[chosen] = True
    recorded_group = true_group.copy()
    for i in np.sort(chosen):
        g = int(true_group[i])
        if rng.random() < 0.7:
            neighbours = [h for h in (g - 1, g + 1) if 0 <= h < NUM_AGE_GROUPS]
            recorded_group[i] = neighbours[int(rng.integers(len(neighbours)))]
        else:
            others = [h for h in range(NUM_AGE_GROUPS) if h != g]
            recorded_group[i] = others[int(rng.integers(len(others)))]
    recorded_age = np.where(flipped, _ages_in_group(rng, recorded_group), true_age).astype(np.int64)
    return flipped, recorded_group, recorded_age


# --- identity traits (per person), drawn in this order


def _draw_identity(rng: np.random.Generator, persons: SyntheticPersons, variant: np.ndarray,
                   premature_grey: np.ndarray) -> _Identity:
    """Each person's looks, at their appearance age."""
    age = persons.appearance_age
    n = len(age)
    stages = _AgeStages.at(age)
    male = rng.random(n) < 0.5
    colour_atypical = persons.atypical_kind == ATYPICAL_KINDS.index("colour")
    colours = _draw_colours(rng, age, stages, persons.true_age, premature_grey, colour_atypical, variant)
    long_hair, bangs, recede = _draw_hair_style(rng, age, stages, male)
    beard_chance = np.where(male & (age >= 18), 0.2 + 0.3 * stages.ageing, 0.0)
    beard = np.where(rng.random(n) < beard_chance, rng.uniform(0.35, 1.0, n), 0.0)
    occluded = persons.atypical_kind == ATYPICAL_KINDS.index("occlusion")
    sunglasses = occluded & (variant < 0.34)
    glasses = (rng.random(n) < 0.06 + 0.45 * np.clip((age - 38) / 40, 0, 1)) & ~sunglasses
    frame_colour = np.where(rng.random((n, 1)) < 0.5, np.array([0.08, 0.06, 0.05]), np.array([0.55, 0.5, 0.45]))
    marks = _draw_age_marks(rng, age)
    shape = _draw_face_shape(rng, stages, male)
    hair = _draw_hair(rng, stages, male, long_hair, bangs, recede)
    age_spot_positions = np.stack([rng.uniform(-0.6, 0.6, (n, 3)), rng.uniform(-0.65, 0.45, (n, 3))], axis=-1)
    blush = 0.4 * stages.childhood + np.where(~male & (age > 15), rng.uniform(0, 0.1, n), 0)
    acne, acne_spots = _draw_acne(rng, age)
    return _Identity(
        stages=stages, colours=colours, shape=shape, hair=hair, marks=marks,
        age_spot_positions=age_spot_positions, blush=blush, acne=acne, acne_spots=acne_spots, beard=beard,
        glasses=glasses, frame_colour=frame_colour, sunglasses=sunglasses,
        hat=occluded & (variant >= 0.34) & (variant < 0.67), face_mask=occluded & (variant >= 0.67),
    )


def _draw_colours(rng: np.random.Generator, age: np.ndarray, stages: _AgeStages, true_age: np.ndarray,
                  premature_grey: np.ndarray, colour_atypical: np.ndarray, variant: np.ndarray) -> _Colours:
    """Skin (paler with age), hair (greying, or dyed), eyes, background, clothes, lips, colour cast."""
    n = len(age)
    old = stages.ageing[:, None]
    t = rng.beta(1.6, 1.8, n) * (len(_SKIN_TONES) - 1)
    t0 = np.floor(t).astype(int).clip(0, len(_SKIN_TONES) - 2)
    skin = _SKIN_TONES[t0] + (t - t0)[:, None] * (_SKIN_TONES[t0 + 1] - _SKIN_TONES[t0])
    skin = skin * (1 + 0.04 * rng.standard_normal((n, 3)))
    # older skin: paler, less saturated
    grey_skin = skin.mean(axis=1, keepdims=True)
    skin = skin + 0.55 * old * (grey_skin - skin)
    skin = skin * (1 - 0.1 * old) + 0.06 * old
    darkness = t / (len(_SKIN_TONES) - 1)

    light_chance = np.clip(0.9 - 1.3 * darkness, 0.05, 0.9)  # light hair and eyes
    h = np.where(rng.random(n) < light_chance, rng.integers(2, 6, n), rng.integers(0, 2, n))
    hair = _HAIR_COLOURS[h] * (1 + 0.08 * rng.standard_normal((n, 3)))
    hair = hair + stages.babyhood[:, None] * 0.3 * (skin * 0.8 - hair)  # babies: fine, light hair
    onset = np.clip(rng.normal(45, 5, n), 32, 60)
    onset = np.where(premature_grey, np.clip(true_age - 12.0, 8, 30), onset)
    grey = np.clip((age - onset) / 22.0, 0, 1)
    # grey at first, whiter with the years
    whiteness = rng.uniform(0.6, 0.7, n) + 0.27 * np.clip((age - 45) / 40, 0, 1)
    grey_colour = whiteness[:, None] * np.array([1.0, 1.0, 1.02])
    hair = hair + grey[:, None] * (grey_colour - hair)
    brow = hair * 0.85

    dyed = colour_atypical & (variant < 0.45)
    hair = np.where(dyed[:, None], _DYED_HAIR_COLOURS[rng.integers(0, len(_DYED_HAIR_COLOURS), n)], hair)
    cast = np.where(
        (colour_atypical & (variant >= 0.45) & (variant < 0.8))[:, None],
        rng.uniform(0.55, 1.45, (n, 3)),
        1.0,
    )
    iris = _EYE_COLOURS[np.where(rng.random(n) < light_chance, rng.integers(2, 5, n), rng.integers(0, 2, n))]
    background = rng.uniform(0.25, 0.85, (n, 3))
    background = background + 0.6 * (background.mean(axis=1, keepdims=True) - background)
    clothes = rng.uniform(0.05, 0.9, (n, 3))
    lip = skin * np.array([0.82, 0.55, 0.55]) + np.array([0.08, 0.0, 0.02])
    lip = lip + 0.4 * old * (skin * 0.8 - lip)
    return _Colours(skin=skin, hair=hair, brow=brow, iris=iris, lip=lip, clothes=clothes, background=background,
                    cast=cast, greyscale=colour_atypical & (variant >= 0.8))


def _draw_hair_style(rng: np.random.Generator, age: np.ndarray, stages: _AgeStages,
                     male: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Long hair's length (head units, 0: none), a fringe (bool), how far the hair recedes (0..1); each ``[n]``."""
    n = len(age)
    long_hair = np.where(rng.random(n) < np.where(male, 0.08, 0.7), rng.uniform(1.0, 1.6, n), 0.0)
    long_hair = long_hair * (1 - stages.babyhood)
    bangs = rng.random(n) < 0.2
    recede = np.where(male & (rng.random(n) < 0.5), rng.uniform(0.3, 1.0, n), 0.0) * np.clip((age - 22) / 38, 0, 1)
    return long_hair, bangs, recede


def _draw_age_marks(rng: np.random.Generator, age: np.ndarray) -> _AgeMarks:
    """Each mark appears at its onset age (a few years' jitter per person) and darkens over ``ramp`` years."""
    shift = rng.normal(0, 3, len(age)).clip(-7, 7)

    def mark(onset: float, ramp: float, strength: float) -> np.ndarray:
        return strength * np.clip((age - onset - shift) / ramp, 0, 1)

    return _AgeMarks(
        forehead_lines=np.stack([mark(27, 8, 0.65), mark(36, 8, 0.65), mark(46, 8, 0.65)], axis=1),
        crows_feet=mark(33, 10, 0.55),
        nasolabial_folds=mark(40, 10, 0.6),
        eye_bags=mark(47, 10, 0.55),
        marionette_lines=mark(55, 10, 0.55),
        age_spots=mark(63, 12, 0.5),
    )


def _draw_face_shape(rng: np.random.Generator, stages: _AgeStages, male: np.ndarray) -> _FaceShape:
    """Children: rounder, relatively larger heads, eyes lower and larger, smaller noses and mouths."""
    n = len(male)
    child, mature, old = stages.childhood, stages.maturity, stages.ageing
    return _FaceShape(
        head_half_width=rng.uniform(0.51, 0.57, n) * (1 + 0.12 * child + 0.05 * old),
        head_aspect=rng.uniform(1.22, 1.32, n) * (1 - 0.2 * child) * (1 + 0.04 * mature + 0.03 * old),
        chin_taper=rng.uniform(0.08, 0.18, n) * mature,
        eye_y=-0.04 + 0.2 * child + rng.uniform(-0.03, 0.03, n),
        eye_x=rng.uniform(0.35, 0.41, n),
        eye_half_width=rng.uniform(0.15, 0.18, n) * (1 + 0.5 * child),
        eye_aspect=rng.uniform(0.5, 0.62, n) * (1 - 0.3 * old) * (1 + 0.2 * child),
        iris_radius=rng.uniform(0.55, 0.68, n) * (1 + 0.15 * child),
        brow_thickness=rng.uniform(0.7, 1.2, n) * np.where(male, 1.25, 1.0) * (0.4 + 0.6 * mature),
        nose_length=(0.36 - 0.14 * child + 0.07 * old) * rng.uniform(0.93, 1.07, n),
        mouth_half_width=rng.uniform(0.23, 0.3, n) * (1 - 0.25 * child),
        lip_thickness=rng.uniform(0.8, 1.2, n) * (1 - 0.4 * old) * np.where(male, 0.85, 1.0),
    )


def _draw_hair(rng: np.random.Generator, stages: _AgeStages, male: np.ndarray, long_hair: np.ndarray,
               bangs: np.ndarray, recede: np.ndarray) -> _Hair:
    """The hair cap: thinner for babies and the elderly, its hairline higher as it recedes, a fringe lower."""
    n = len(male)
    baby = stages.babyhood
    volume = rng.uniform(1.06, 1.2, n) - 0.1 * stages.elderliness
    volume = volume + (1.02 - volume) * np.maximum(baby, np.clip((recede - 0.6) * 2.5, 0, 1))
    hairline = rng.uniform(-0.62, -0.48, n) - 0.4 * recede - 0.15 * baby - 0.2 * stages.elderliness
    side_length = np.where(male, rng.uniform(0.0, 0.25, n), rng.uniform(0.2, 0.6, n))
    return _Hair(
        volume=volume,
        hairline=np.where(bangs, np.maximum(hairline, -0.42) + 0.06, hairline),
        hairline_curve=np.where(bangs, 0.35, 0.9),
        opacity=1 - 0.55 * baby,
        side_length=side_length,
        long_length=long_hair,
        baldness=np.clip((recede - 0.55) * 2.5, 0, 1),
    )


def _draw_acne(rng: np.random.Generator, age: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Teenage acne from about 12 to 20: its strength ``[n]`` and four red spots (u, v) ``[n, 4, 2]``."""
    n = len(age)
    acne = np.where(rng.random(n) < 0.8, rng.uniform(0.4, 0.75, n), 0.0) * np.clip(
        np.minimum(age - 11.0, 21.0 - age) / 3.0, 0, 1
    )
    spots = np.stack([rng.uniform(-0.65, 0.65, (n, 4)), rng.uniform(-0.45, 0.5, (n, 4))], axis=-1)
    return acne, spots


# --- per image: expand and add jitter


def _draw_images(rng: np.random.Generator, person: _Identity, num_images: np.ndarray) -> _FaceParams:
    """``num_images[i]`` images of person ``i``, person by person: pose, expression, occlusion, lighting, noise."""
    n = len(num_images)
    person_of_image = np.repeat(np.arange(n), num_images)
    m = len(person_of_image)

    def per(x: np.ndarray) -> np.ndarray:
        return x[person_of_image]

    colours, shape, hair, marks = person.colours, person.shape, person.hair, person.marks
    rot = rng.normal(0, 0.07, m).clip(-0.2, 0.2)
    scale = rng.uniform(0.94, 1.06, m)
    offset_x = rng.normal(0, 0.03, m).clip(-0.08, 0.08)
    offset_y = 0.05 + rng.normal(0, 0.03, m).clip(-0.08, 0.08)
    background = per(colours.background) * rng.uniform(0.9, 1.1, (m, 1)) + rng.normal(0, 0.03, (m, 3))
    background_gradient = rng.uniform(-0.25, 0.25, m)
    openness = rng.uniform(0.75, 1.1, m) * np.where(rng.random(m) < 0.05, 0.15, 1.0)
    gaze = rng.normal(0, 0.25, m).clip(-0.4, 0.4)
    brow_raise = rng.uniform(-0.02, 0.06, m)
    mouth_half_width = per(shape.mouth_half_width) * rng.uniform(0.92, 1.12, m)
    smile = rng.uniform(-0.3, 1.0, m)
    mouth_open = np.where(rng.random(m) < 0.25, rng.uniform(0.2, 0.7, m), 0.0)
    occlusion_on = rng.random(m) < 0.85
    hat_colour = rng.uniform(0.05, 0.95, (n, 3))
    mask_colour = np.where(rng.random((n, 1)) < 0.6, np.array([0.62, 0.8, 0.9]), np.array([0.92, 0.92, 0.92]))
    # lighting (applied after pooling)
    brightness = rng.uniform(0.85, 1.12, m)
    cast = rng.uniform(0.96, 1.04, (m, 3)) * per(colours.cast)
    light_angle = rng.uniform(0, 2 * math.pi, m)
    light_strength = rng.uniform(0.0, 0.2, m)
    noise_amplitude = rng.uniform(1.5, 6.0, m)
    return _FaceParams(
        rotation_cos=np.cos(rot),
        rotation_sin=np.sin(rot),
        offset_x=offset_x,
        offset_y=offset_y,
        head_half_width=per(shape.head_half_width) * scale,
        head_half_height=per(shape.head_half_width * shape.head_aspect) * scale,
        chin_taper=per(shape.chin_taper),
        skin_colour=per(colours.skin),
        hair_colour=per(colours.hair),
        brow_colour=per(colours.brow),
        iris_colour=per(colours.iris),
        lip_colour=per(colours.lip),
        clothes_colour=per(colours.clothes),
        frame_colour=per(person.frame_colour),
        hat_colour=per(hat_colour),
        mask_colour=per(mask_colour),
        background_colour=background,
        background_gradient=background_gradient,
        eye_y=per(shape.eye_y),
        eye_x=per(shape.eye_x),
        eye_half_width=per(shape.eye_half_width),
        eye_half_height=per(shape.eye_half_width * shape.eye_aspect) * openness,
        iris_radius=per(shape.iris_radius),
        gaze=gaze,
        brow_thickness=per(shape.brow_thickness),
        brow_raise=brow_raise,
        nose_length=per(shape.nose_length),
        mouth_half_width=mouth_half_width,
        lip_thickness=per(shape.lip_thickness),
        smile=smile,
        mouth_open=mouth_open,
        childhood=per(person.stages.childhood),
        ageing=per(person.stages.ageing),
        blush=per(person.blush),
        acne=per(person.acne),
        acne_spots=per(person.acne_spots),
        forehead_lines=per(marks.forehead_lines),
        crows_feet=per(marks.crows_feet),
        eye_bags=per(marks.eye_bags),
        nasolabial_folds=per(marks.nasolabial_folds),
        marionette_lines=per(marks.marionette_lines),
        age_spots=per(marks.age_spots),
        age_spot_positions=per(person.age_spot_positions),
        hair_volume=per(hair.volume),
        hairline=per(hair.hairline),
        hairline_curve=per(hair.hairline_curve),
        hair_opacity=per(hair.opacity),
        side_hair_length=per(hair.side_length),
        long_hair_length=per(hair.long_length),
        baldness=per(hair.baldness),
        beard=per(person.beard),
        glasses=per(person.glasses.astype(float)),
        sunglasses=(per(person.sunglasses) & occlusion_on).astype(float),
        hat=(per(person.hat) & occlusion_on).astype(float),
        face_mask=(per(person.face_mask) & occlusion_on).astype(float),
        light=brightness[:, None] * cast,
        light_gradient_x=light_strength * np.cos(light_angle),
        light_gradient_y=light_strength * np.sin(light_angle),
        greyscale=per(colours.greyscale.astype(float)),
        noise_amplitude=noise_amplitude,
    ).quantized()


def sample_persons(cfg: DatasetConfig) -> SyntheticPersons:
    """The persons (labels, true ages, hard cases) of ``generate_synthetic(cfg)``, without drawing images."""
    check_synthetic_config(cfg)
    return _draw_persons(np.random.Generator(np.random.PCG64(cfg.seed)), cfg)[0]


# ----------------------------------------------------------------------------
# rasterization


class _Canvas:
    """Float32 RGB canvases of ``B`` images of ``res x res = P`` pixels, in head-normalized coordinates.

    ``U``/``V`` ``[B, P]``: coordinates in units of the head's half-width/half-height,
    head centre at (0, 0), V pointing down; ``A = |U|`` for left/right
    symmetric features; ``Y`` ``[1, P]``: the frame's vertical coordinate
    (-1..1). ``img`` ``[3, B, P]``; ``t1`` and ``t2`` are scratch space.
    """

    def __init__(self, p: _FaceParams, res: int):
        B = len(p.head_half_width)
        coords = ((np.arange(res, dtype=np.float32) + 0.5) / res * 2 - 1).astype(np.float32)
        X = np.tile(coords, res)[None, :]
        Y = np.repeat(coords, res)[None, :]
        dx = X - p.offset_x
        dy = Y - p.offset_y
        self.U = (p.rotation_cos * dx + p.rotation_sin * dy) / p.head_half_width
        self.V = (p.rotation_cos * dy - p.rotation_sin * dx) / p.head_half_height
        self.A = np.abs(self.U)
        self.Y = Y
        self.t1 = np.empty_like(self.U)
        self.t2 = np.empty_like(self.U)
        self.img = np.empty((3, B, res * res), dtype=np.float32)

    def dist(self, X: np.ndarray, cx, cy, rx, ry, out: np.ndarray | None = None) -> np.ndarray:
        """((X - cx)/rx)^2 + ((V - cy)/ry)^2, into ``out`` (default: self.t1)."""
        out = self.t1 if out is None else out
        np.subtract(X, cx, out=out)
        out /= rx
        np.multiply(out, out, out=out)
        np.subtract(self.V, cy, out=self.t2)
        self.t2 /= ry
        np.multiply(self.t2, self.t2, out=self.t2)
        out += self.t2
        return out

    def ellipse(self, X, cx, cy, rx, ry) -> np.ndarray:
        return self.dist(X, cx, cy, rx, ry) < 1

    def paint(self, mask: np.ndarray, colour: list) -> None:
        for c in range(3):
            np.copyto(self.img[c], colour[c], where=mask)

    def blend(self, mask: np.ndarray, colour: list, alpha) -> None:
        """img += alpha * mask * (colour - img)."""
        w = mask * np.asarray(alpha, dtype=np.float32)
        for c in range(3):
            self.img[c] += w * (colour[c] - self.img[c])

    def shade(self, mask: np.ndarray, amount) -> None:
        """img *= 1 - amount * mask (darken)."""
        f = 1 - mask * np.asarray(amount, dtype=np.float32)
        self.img *= f

    def line(self, a0, slope, lo, hi, half) -> np.ndarray:
        """Points with |V - (a0 + slope*|U|)| < half and lo <= |U| <= hi."""
        np.multiply(self.A, slope, out=self.t1)
        self.t1 += a0
        np.subtract(self.V, self.t1, out=self.t1)
        np.abs(self.t1, out=self.t1)
        return (self.t1 < half) & (self.A >= lo) & (self.A <= hi)


def _rgb(colour: np.ndarray) -> list[np.ndarray]:
    """A chunk's colour ``[B, 1, 3]`` as its three channels ``[B, 1]``."""
    return [colour[..., c] for c in range(3)]


def _colour(*rgb: float) -> list[np.float32]:
    """A fixed colour, as float32 channels."""
    return [np.float32(value) for value in rgb]


@dataclass(frozen=True)
class _Landmarks:
    """Heights (``V``) several features are placed by, and a fine line's half thickness; each ``[B, 1]``."""

    nose_y: np.ndarray  # the nostrils
    mouth_y: np.ndarray  # the middle of the mouth
    line: np.ndarray  # half thickness of a fine line (0.05 frame units), in V units

    @classmethod
    def of(cls, p: _FaceParams) -> "_Landmarks":
        nose_y = p.eye_y + p.nose_length
        return cls(nose_y=nose_y, mouth_y=nose_y + 0.22 - 0.05 * p.childhood, line=0.05 / p.head_half_height)


def _render(p: _FaceParams, size: int) -> np.ndarray:
    """Draw ``B`` faces: float32 ``[B, 3, size, size]`` in 0..1, before lighting and noise.

    Each face is drawn at ``ss`` times ``size`` (at least 64 pixels), back to
    front, then average-pooled.
    """
    ss = max(2, -(-64 // size))
    cv = _Canvas(p, size * ss)
    at = _Landmarks.of(p)
    _paint_background(cv, p)
    _paint_body(cv, p)
    head = _paint_head(cv, p)
    _paint_cheeks(cv, p, at)
    _paint_wrinkles(cv, p, at)
    _paint_nose(cv, p, at)
    _paint_beard(cv, p, at, head)
    _paint_mouth(cv, p, at)
    _paint_eyes(cv, p)
    _paint_brows(cv, p)
    _paint_hair(cv, p, head)
    _paint_glasses_and_occlusions(cv, p, at)
    return _pool(cv.img, size, ss)


def _paint_background(cv: _Canvas, p: _FaceParams) -> None:
    """The background, with a vertical gradient."""
    gradient = 1 + p.background_gradient * cv.Y
    for c, channel in enumerate(_rgb(p.background_colour)):
        np.multiply(channel, gradient, out=cv.img[c])


def _paint_body(cv: _Canvas, p: _FaceParams) -> None:
    """Clothes and long hair behind the head, then neck and ears."""
    U, V, A = cv.U, cv.V, cv.A
    skin = _rgb(p.skin_colour)
    cv.paint(cv.ellipse(U, 0, 1.85, 1.9, 0.62), _rgb(p.clothes_colour))
    long_hair = (A < p.hair_volume * 0.98) & (V > 0) & (V < p.long_hair_length)
    cv.blend(long_hair, [h * 0.8 for h in _rgb(p.hair_colour)], p.hair_opacity)
    cv.paint((A < 0.4) & (V > 0.3) & (V < 1.6), [s * 0.82 for s in skin])
    cv.paint(cv.ellipse(A, 0.97, p.eye_y + 0.12, 0.13, 0.2), [s * 0.9 for s in skin])


def _paint_head(cv: _Canvas, p: _FaceParams) -> np.ndarray:
    """The head: an egg shape, narrower at the chin, shaded towards its silhouette. Returns its mask ``[B, P]``."""
    U, V = cv.U, cv.V
    np.multiply(V, p.chin_taper, out=cv.t1)
    cv.t1 += np.float32(1)
    cv.t1 *= U
    cv.t1 *= cv.t1
    head_distance = cv.t1 + V * V
    head = head_distance < 1
    cv.paint(head, _rgb(p.skin_colour))
    rim = head & (head_distance > 0.72)
    cv.shade(rim, 0.07 + 0.2 * p.ageing)
    return head


def _paint_cheeks(cv: _Canvas, p: _FaceParams, at: _Landmarks) -> None:
    """Blush, and teenage acne."""
    cv.blend(cv.ellipse(cv.A, 0.52, at.nose_y + 0.03, 0.2, 0.12), _colour(0.95, 0.45, 0.5), p.blush)
    acne_colour = _colour(0.78, 0.25, 0.25)
    for k in range(4):
        spot = cv.ellipse(cv.U, p.acne_spots[..., k, 0], p.acne_spots[..., k, 1], 0.07, 0.055)
        cv.blend(spot, acne_colour, p.acne)


def _paint_wrinkles(cv: _Canvas, p: _FaceParams, at: _Landmarks) -> None:
    """Forehead lines, crow's feet, eye bags, nasolabial and marionette lines, age spots."""
    U, V, A = cv.U, cv.V, cv.A
    ey, ex, erx, ery = p.eye_y, p.eye_x, p.eye_half_width, p.eye_half_height
    mw, th = p.mouth_half_width, at.line
    for k in range(3):
        cv.shade(cv.line(ey - 0.28 - k * 0.11, 0.12, 0, 0.42 - 0.05 * k, th), p.forehead_lines[..., k])
    corner = ex + erx
    for slope in (-0.45, 0.0, 0.45):
        cv.shade(cv.line(ey - slope * corner, slope, corner + 0.02, corner + 0.16, th), p.crows_feet)
    bags = cv.dist(A, ex, ey + ery * 1.5, erx * 0.9, ery * 0.9)
    cv.shade((bags < 1) & (bags > 0.45) & (V > ey + ery * 1.5), p.eye_bags)
    fold_slope = 0.25 / (mw + 0.05 - 0.16)
    cv.shade(cv.line(at.nose_y - 0.06 - 0.16 * fold_slope, fold_slope, 0.16, mw + 0.05, th * 1.2), p.nasolabial_folds)
    cv.shade(cv.line(at.mouth_y - (mw + 0.02) * 8.0, 8.0, mw + 0.02, mw + 0.05, th), p.marionette_lines)
    for k in range(3):
        spot = cv.ellipse(U, p.age_spot_positions[..., k, 0], p.age_spot_positions[..., k, 1], 0.05, 0.04)
        cv.shade(spot, p.age_spots)


def _paint_nose(cv: _Canvas, p: _FaceParams, at: _Landmarks) -> None:
    """A nostril shadow and a shaded side."""
    U, V = cv.U, cv.V
    cv.shade(cv.ellipse(U, 0, at.nose_y, 0.11 * (1 - 0.3 * p.childhood), 0.045), 0.22)
    cv.shade((np.abs(U - 0.07) < 0.025) & (V > p.eye_y + 0.1) & (V < at.nose_y - 0.02), 0.1)


def _paint_beard(cv: _Canvas, p: _FaceParams, at: _Landmarks, head: np.ndarray) -> None:
    """A beard or stubble below the nose, around the mouth."""
    beard = head & (cv.V > at.nose_y + 0.02) & ~cv.ellipse(cv.U, 0, at.mouth_y, p.mouth_half_width * 1.05, 0.09)
    cv.blend(beard, [h * 0.9 for h in _rgb(p.hair_colour)], p.beard)


def _paint_mouth(cv: _Canvas, p: _FaceParams, at: _Landmarks) -> None:
    """The lips (an ellipse bent by the smile), the open mouth inside, the line between the lips."""
    U, V, mw = cv.U, cv.V, p.mouth_half_width
    np.multiply(U, U, out=cv.t2)
    cv.t2 *= (0.07 * p.smile) / (mw * mw)
    centre = at.mouth_y - cv.t2  # the mouth's centre line
    lip_h = 0.045 * p.lip_thickness + 0.04 * p.mouth_open
    lips = ((U / mw) ** 2 + ((V - centre) / lip_h) ** 2) < 1
    cv.paint(lips, _rgb(p.lip_colour))
    inner = ((U / (mw * 0.75)) ** 2 + ((V - centre) / (lip_h * p.mouth_open * 0.75 + 1e-3)) ** 2) < 1
    cv.paint(inner, _colour(0.25, 0.05, 0.07))
    cv.shade((np.abs(V - centre) < at.line * 0.8) & (np.abs(U) < mw * 0.95), 0.35)


def _paint_eyes(cv: _Canvas, p: _FaceParams) -> None:
    """Sclera, iris, pupil, upper lid."""
    U, V, A = cv.U, cv.V, cv.A
    ey, ex, erx, ery = p.eye_y, p.eye_x, p.eye_half_width, p.eye_half_height
    sclera = cv.ellipse(A, ex, ey, erx, ery)
    cv.paint(sclera, _colour(0.96, 0.95, 0.93))
    iris_rx = erx * p.iris_radius
    # both eyes look the same way: |U| would mirror the gaze, so shift U first
    iris_x = np.abs(U - p.gaze * erx * 0.35)
    iris_ry = iris_rx * p.head_half_width / p.head_half_height  # round in the frame
    iris = sclera & cv.ellipse(iris_x, ex, ey, iris_rx, iris_ry)
    cv.paint(iris, _rgb(p.iris_colour))
    pupil = sclera & cv.ellipse(iris_x, ex, ey, iris_rx * 0.45, iris_ry * 0.45)
    cv.paint(pupil, _colour(0.03, 0.03, 0.03))
    lid = cv.dist(A, ex, ey, erx * 1.12, ery * 1.35 + 0.02)
    cv.shade((lid < 1) & ~sclera & (V < ey), 0.25 + 0.15 * p.ageing)


def _paint_brows(cv: _Canvas, p: _FaceParams) -> None:
    """Eyebrows: arched bands, fainter on children."""
    ex, erx = p.eye_x, p.eye_half_width
    bx = cv.A - ex
    centre = p.eye_y - p.eye_half_height - 0.11 - p.brow_raise + 0.9 * bx * bx
    half_height = 0.03 * p.brow_thickness / (p.head_half_height / 0.7)
    brows = (np.abs(cv.V - centre) < half_height) & (np.abs(bx) < erx * 1.3)
    cv.blend(brows, _rgb(p.brow_colour), 1 - 0.5 * (1 - p.brow_thickness.clip(0, 1)) * p.childhood)


def _paint_hair(cv: _Canvas, p: _FaceParams, head: np.ndarray) -> None:
    """A cap over the head, cut at the hairline (lower with a fringe) and at a receding top."""
    U, V = cv.U, cv.V
    cap_distance = cv.dist(U, 0, -0.08, p.hair_volume, p.hair_volume * 1.05)
    cap = (cap_distance < 1) & (V < p.side_hair_length)
    np.multiply(U, U, out=cv.t2)
    cv.t2 *= p.hairline_curve
    cv.t2 += p.hairline
    cap &= (V < cv.t2) | ~head
    bald_top = cv.ellipse(U, 0, -0.75, 0.7 * p.baldness + 1e-3, 0.45 * p.baldness + 1e-3)
    cap &= ~bald_top
    cv.blend(cap, _rgb(p.hair_colour), p.hair_opacity)


def _paint_glasses_and_occlusions(cv: _Canvas, p: _FaceParams, at: _Landmarks) -> None:
    """Glasses, sunglasses, a hat, a face mask."""
    U, V, A = cv.U, cv.V, cv.A
    ey, ex, erx = p.eye_y, p.eye_x, p.eye_half_width
    lens = cv.dist(A, ex, ey, erx * 1.45, erx * 1.1 * p.head_half_width / p.head_half_height)
    ring = (lens < 1) & (lens > 0.72)
    bridge = (A < ex - erx * 1.2) & (np.abs(V - ey + 0.03) < at.line)
    cv.blend(ring | bridge, _rgb(p.frame_colour), p.glasses)
    cv.blend((lens < 1) | bridge, _colour(0.06, 0.07, 0.1), p.sunglasses)
    brim_y = ey - 0.5
    hat = ((cv.dist(U, 0, -0.1, 1.18, 1.15) < 1) & (V < brim_y)) | ((np.abs(V - brim_y) < 0.06) & (A < 1.32))
    cv.blend(hat, _rgb(p.hat_colour), p.hat)
    mask = (A < 0.98) & (V > at.nose_y - 0.1) & (cv.dist(U, 0, 0.1, 1.0, 0.9) < 1)
    cv.blend(mask, _rgb(p.mask_colour), p.face_mask)


def _pool(img: np.ndarray, size: int, ss: int) -> np.ndarray:
    """Anti-aliasing: ``[3, B, (size*ss)**2]`` average-pooled to ``[B, 3, size, size]`` (sums in a fixed order)."""
    blocks = img.reshape(3, img.shape[1], size, ss, size, ss)
    out = np.zeros((3, img.shape[1], size, size), dtype=np.float32)
    for i in range(ss):
        for j in range(ss):
            out += blocks[:, :, :, i, :, j]
    out *= np.float32(1.0 / (ss * ss))
    return out.transpose(1, 0, 2, 3)


def _finish(img: np.ndarray, p: _FaceParams, noise: np.ndarray) -> np.ndarray:
    """Lighting, greyscale and noise: ``img`` float32 ``[B, 3, S, S]`` in 0..1 and ``noise``
    ``[B, 3, S, S]`` in -1..1 (times each image's amplitude) -> uint8 ``[B, 3, S, S]``."""
    size = img.shape[-1]
    coords = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1).astype(np.float32)
    gradient = (1 + p.light_gradient_x[:, :, None] * coords[None, None, :]
                + p.light_gradient_y[:, :, None] * coords[None, :, None])  # [B, S, S]
    light = p.light.transpose(0, 2, 1)[:, :, :, None]  # [B, 3, 1, 1]
    img = img * gradient[:, None] * light
    greyscale = p.greyscale[:, :, None, None]
    luminance = img[:, 0:1] * 0.3 + img[:, 1:2] * 0.59 + img[:, 2:3] * 0.11
    img = img + greyscale * (luminance - img)
    img = img * np.float32(255) + noise * p.noise_amplitude[:, :, None, None]
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def generate_synthetic(cfg: DatasetConfig) -> FaceDataset:
    """The synthetic face-age dataset of ``cfg`` (kind ``synthetic``); deterministic in ``cfg.seed``.

    Images are ordered person by person (person_id 0, 1, ...); image_id is
    the running index.
    """
    persons, params, noise_seed = _draw(cfg)
    size = cfg.image_size
    m = int(persons.num_images.sum())
    images = np.empty((m, 3, size, size), dtype=np.uint8)
    noise_rng = np.random.Generator(np.random.PCG64(noise_seed))
    for start in range(0, m, _CHUNK):
        stop = min(m, start + _CHUNK)
        p = params.rows(start, stop)
        img = _render(p, size)
        # triangular noise in [-1, 1] from uniforms (no transcendental functions)
        uniforms = noise_rng.random((2, stop - start, 3, size, size), dtype=np.float32)
        images[start:stop] = _finish(img, p, uniforms[0] + uniforms[1] - 1)
    person_of_image = np.repeat(persons.person_id, persons.num_images)
    return FaceDataset(
        images=images,
        age_group=persons.age_group[person_of_image].astype(np.int64),
        age=persons.age[person_of_image].astype(np.int64),
        person_id=person_of_image.astype(np.int64),
        image_id=np.arange(m, dtype=np.int64),
    )
