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
    lo = np.asarray(AGE_GROUP_EDGES)[groups]
    hi = np.where(groups == NUM_AGE_GROUPS - 1, MAX_SYNTHETIC_AGE, lo + 9)
    return rng.integers(lo, hi + 1).astype(np.int64)


def _q(x: np.ndarray) -> np.ndarray:
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
    gaze: np.ndarray  # sideways shift of both irises, in 0.35 eye half-widths
    brow_thickness: np.ndarray  # 1: an adult's
    brow_raise: np.ndarray
    nose_length: np.ndarray  # from the eyes down to the nostrils
    mouth_half_width: np.ndarray
    lip_thickness: np.ndarray  # 1: an adult's
    smile: np.ndarray  # curvature of the mouth; negative: down
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
        return _FaceParams(**{f.name: _q(getattr(self, f.name)) for f in fields(self)})

    def rows(self, start: int, stop: int) -> "_FaceParams":
        """Images ``start:stop`` (``B`` of them), each array with a pixel axis after the image axis:
        ``[B, 1]``, ``[B, 1, 3]``, ``[B, 1, K, 2]``."""
        return _FaceParams(**{f.name: getattr(self, f.name)[start:stop, None] for f in fields(self)})


def _draw(cfg: DatasetConfig) -> tuple[SyntheticPersons, _FaceParams, int]:
    """The persons, what each image is drawn with, and the seed of the pixel noise."""
    check_synthetic_config(cfg)
    rng = np.random.Generator(np.random.PCG64(cfg.seed))
    n = cfg.num_persons
    G = NUM_AGE_GROUPS

    # --- who: ages, labels, hard cases ---------------------------------
    true_group = rng.permutation(np.repeat(np.arange(G), _group_counts(n))).astype(np.int64)
    true_age = _ages_in_group(rng, true_group)
    app_age = true_age + rng.random(n)  # continuous appearance age

    n_atyp = int(round(cfg.atypical_fraction * n))
    kind = np.zeros(n, dtype=np.int64)
    atyp_idx = rng.choice(n, size=n_atyp, replace=False)
    kind[atyp_idx] = rng.integers(1, len(ATYPICAL_KINDS), size=n_atyp)
    sub = rng.random(n)  # variant within the atypical kind
    other_group = np.empty(n, dtype=np.int64)
    for i in range(n):
        choices = [g for g in range(G) if abs(g - true_group[i]) >= 2]
        other_group[i] = choices[int(rng.integers(len(choices)))]
    other_age = _ages_in_group(rng, other_group) + rng.random(n)
    is_look = kind == 1
    premature_grey = is_look & (sub < 0.35) & (true_age >= 12) & (true_age < 45)
    looks_other_age = is_look & ~premature_grey
    app_age = np.where(looks_other_age, other_age, app_age)

    n_flip = int(round(cfg.label_noise * n))
    flipped = np.zeros(n, dtype=bool)
    flip_idx = rng.choice(n, size=n_flip, replace=False)
    flipped[flip_idx] = True
    rec_group = true_group.copy()
    for i in np.sort(flip_idx):
        g = int(true_group[i])
        if rng.random() < 0.7:
            neighbours = [h for h in (g - 1, g + 1) if 0 <= h < G]
            rec_group[i] = neighbours[int(rng.integers(len(neighbours)))]
        else:
            others = [h for h in range(G) if h != g]
            rec_group[i] = others[int(rng.integers(len(others)))]
    rec_age = np.where(flipped, _ages_in_group(rng, rec_group), true_age).astype(np.int64)

    num_images = rng.integers(cfg.min_images_per_person, cfg.max_images_per_person + 1, size=n).astype(np.int64)

    persons = SyntheticPersons(
        person_id=np.arange(n, dtype=np.int64),
        age=rec_age,
        age_group=rec_group,
        true_age=true_age,
        true_group=true_group,
        appearance_age=app_age,
        atypical_kind=kind,
        label_flipped=flipped,
        num_images=num_images,
    )

    # --- identity traits (per person) ------------------------------------
    A = app_age
    child = np.clip((20.0 - A) / 20.0, 0, 1)  # 1 at birth, 0 from 20
    baby = np.clip((3.0 - A) / 3.0, 0, 1)
    mature = np.clip((A - 14.0) / 16.0, 0, 1)  # 0 until 14, 1 from 30
    old = np.clip((A - 25.0) / 65.0, 0, 1)  # 0 until 25, 1 at 90
    elderly = np.clip((A - 60.0) / 30.0, 0, 1)  # 0 until 60, 1 at 90
    male = rng.random(n) < 0.5

    skin_tones = np.array(
        [[0.99, 0.87, 0.76], [0.93, 0.76, 0.62], [0.80, 0.58, 0.43], [0.58, 0.38, 0.25], [0.38, 0.25, 0.17]]
    )
    t = rng.beta(1.6, 1.8, n) * (len(skin_tones) - 1)
    t0 = np.floor(t).astype(int).clip(0, len(skin_tones) - 2)
    skin = skin_tones[t0] + (t - t0)[:, None] * (skin_tones[t0 + 1] - skin_tones[t0])
    skin = skin * (1 + 0.04 * rng.standard_normal((n, 3)))
    # older skin: paler, less saturated
    grey_skin = skin.mean(axis=1, keepdims=True)
    skin = skin + 0.55 * old[:, None] * (grey_skin - skin)
    skin = skin * (1 - 0.1 * old[:, None]) + 0.06 * old[:, None]
    darkness = t / (len(skin_tones) - 1)

    hair_palette = np.array(
        [
            [0.06, 0.05, 0.05],  # black
            [0.20, 0.12, 0.07],  # dark brown
            [0.38, 0.24, 0.13],  # brown
            [0.58, 0.42, 0.25],  # light brown
            [0.85, 0.72, 0.45],  # blond
            [0.62, 0.26, 0.10],  # red
        ]
    )
    light_hair_p = np.clip(0.9 - 1.3 * darkness, 0.05, 0.9)
    h = np.where(rng.random(n) < light_hair_p, rng.integers(2, 6, n), rng.integers(0, 2, n))
    hair = hair_palette[h] * (1 + 0.08 * rng.standard_normal((n, 3)))
    hair = hair + baby[:, None] * 0.3 * (skin * 0.8 - hair)  # babies: fine, light hair
    onset = np.clip(rng.normal(45, 5, n), 32, 60)
    onset = np.where(premature_grey, np.clip(true_age - 12.0, 8, 30), onset)
    grey = np.clip((A - onset) / 22.0, 0, 1)
    # grey at first, whiter with the years
    grey_col = (rng.uniform(0.6, 0.7, n) + 0.27 * np.clip((A - 45) / 40, 0, 1))[:, None] * np.array([1.0, 1.0, 1.02])
    hair = hair + grey[:, None] * (grey_col - hair)
    brow = hair * 0.85

    colour_kind = kind == 2
    dyed = colour_kind & (sub < 0.45)
    wild = np.array([[0.15, 0.35, 0.95], [0.95, 0.25, 0.65], [0.2, 0.8, 0.35], [0.55, 0.2, 0.85], [1.0, 0.5, 0.05]])
    hair = np.where(dyed[:, None], wild[rng.integers(0, len(wild), n)], hair)
    cast_person = np.where(
        (colour_kind & (sub >= 0.45) & (sub < 0.8))[:, None],
        rng.uniform(0.55, 1.45, (n, 3)),
        1.0,
    )
    greyscale = colour_kind & (sub >= 0.8)

    occl = kind == 3
    sunglasses = occl & (sub < 0.34)
    hat = occl & (sub >= 0.34) & (sub < 0.67)
    face_mask = occl & (sub >= 0.67)

    eye_palette = np.array(
        [[0.25, 0.14, 0.06], [0.12, 0.08, 0.05], [0.25, 0.45, 0.75], [0.3, 0.5, 0.3], [0.45, 0.45, 0.5]]
    )
    eye_col = eye_palette[np.where(rng.random(n) < light_hair_p, rng.integers(2, 5, n), rng.integers(0, 2, n))]
    bg = rng.uniform(0.25, 0.85, (n, 3))
    bg = bg + 0.6 * (bg.mean(axis=1, keepdims=True) - bg)
    cloth = rng.uniform(0.05, 0.9, (n, 3))
    lip = skin * np.array([0.82, 0.55, 0.55]) + np.array([0.08, 0.0, 0.02])
    lip = lip + 0.4 * old[:, None] * (skin * 0.8 - lip)

    long_hair = np.where(rng.random(n) < np.where(male, 0.08, 0.7), rng.uniform(1.0, 1.6, n), 0.0)
    long_hair = long_hair * (1 - baby)
    bangs = rng.random(n) < 0.2
    recede = np.where(male & (rng.random(n) < 0.5), rng.uniform(0.3, 1.0, n), 0.0) * np.clip((A - 22) / 38, 0, 1)
    beard_p = np.where(male & (A >= 18), 0.2 + 0.3 * old, 0.0)
    beard = np.where(rng.random(n) < beard_p, rng.uniform(0.35, 1.0, n), 0.0)
    glasses = (rng.random(n) < 0.06 + 0.45 * np.clip((A - 38) / 40, 0, 1)) & ~sunglasses
    frame_col = np.where(rng.random((n, 1)) < 0.5, np.array([0.08, 0.06, 0.05]), np.array([0.55, 0.5, 0.45]))
    # age marks: each appears at its onset age (person jitter of a few years)
    # and darkens over ``ramp`` years
    shift = rng.normal(0, 3, n).clip(-7, 7)

    def mark(onset: float, ramp: float, strength: float) -> np.ndarray:
        return strength * np.clip((A - onset - shift) / ramp, 0, 1)

    marks = {
        "fl0": mark(27, 8, 0.65), "fl1": mark(36, 8, 0.65), "fl2": mark(46, 8, 0.65),
        "crow": mark(33, 10, 0.55), "naso": mark(40, 10, 0.6), "bags": mark(47, 10, 0.55),
        "mario": mark(55, 10, 0.55), "spots": mark(63, 12, 0.5),
    }

    hw = rng.uniform(0.51, 0.57, n) * (1 + 0.12 * child + 0.05 * old)
    aspect = rng.uniform(1.22, 1.32, n) * (1 - 0.2 * child) * (1 + 0.04 * mature + 0.03 * old)
    taper = rng.uniform(0.08, 0.18, n) * mature
    ey = -0.04 + 0.2 * child + rng.uniform(-0.03, 0.03, n)
    ex = rng.uniform(0.35, 0.41, n)
    erx = rng.uniform(0.15, 0.18, n) * (1 + 0.5 * child)
    eye_h = rng.uniform(0.5, 0.62, n) * (1 - 0.3 * old) * (1 + 0.2 * child)
    iris_r = rng.uniform(0.55, 0.68, n) * (1 + 0.15 * child)
    brow_th = rng.uniform(0.7, 1.2, n) * np.where(male, 1.25, 1.0) * (0.4 + 0.6 * mature)
    nose_len = (0.36 - 0.14 * child + 0.07 * old) * rng.uniform(0.93, 1.07, n)
    mouth_w = rng.uniform(0.23, 0.3, n) * (1 - 0.25 * child)
    lip_th = rng.uniform(0.8, 1.2, n) * (1 - 0.4 * old) * np.where(male, 0.85, 1.0)
    hair_vol = rng.uniform(1.06, 1.2, n) - 0.1 * elderly
    hair_vol = hair_vol + (1.02 - hair_vol) * np.maximum(baby, np.clip((recede - 0.6) * 2.5, 0, 1))
    hairline = rng.uniform(-0.62, -0.48, n) - 0.4 * recede - 0.15 * baby - 0.2 * elderly
    hair_alpha = 1 - 0.55 * baby
    side_len = np.where(male, rng.uniform(0.0, 0.25, n), rng.uniform(0.2, 0.6, n))
    spot_pos = np.stack([rng.uniform(-0.6, 0.6, (n, 3)), rng.uniform(-0.65, 0.45, (n, 3))], axis=-1)
    blush = 0.4 * child + np.where(~male & (A > 15), rng.uniform(0, 0.1, n), 0)
    # teenage acne: red spots from about 12 to 20
    acne = np.where(rng.random(n) < 0.8, rng.uniform(0.4, 0.75, n), 0.0) * np.clip(
        np.minimum(A - 11.0, 21.0 - A) / 3.0, 0, 1
    )
    acne_pos = np.stack([rng.uniform(-0.65, 0.65, (n, 4)), rng.uniform(-0.45, 0.5, (n, 4))], axis=-1)

    # --- per image: expand and add jitter ------------------------------
    pi = np.repeat(np.arange(n), num_images)
    m = len(pi)

    def per(x: np.ndarray) -> np.ndarray:
        return x[pi]

    rot = rng.normal(0, 0.07, m).clip(-0.2, 0.2)
    scale = rng.uniform(0.94, 1.06, m)
    offset_x = rng.normal(0, 0.03, m).clip(-0.08, 0.08)
    offset_y = 0.05 + rng.normal(0, 0.03, m).clip(-0.08, 0.08)
    background = per(bg) * rng.uniform(0.9, 1.1, (m, 1)) + rng.normal(0, 0.03, (m, 3))
    background_gradient = rng.uniform(-0.25, 0.25, m)
    openness = rng.uniform(0.75, 1.1, m) * np.where(rng.random(m) < 0.05, 0.15, 1.0)
    gaze = rng.normal(0, 0.25, m).clip(-0.4, 0.4)
    brow_raise = rng.uniform(-0.02, 0.06, m)
    mouth_half_width = per(mouth_w) * rng.uniform(0.92, 1.12, m)
    smile = rng.uniform(-0.3, 1.0, m)
    mouth_open = np.where(rng.random(m) < 0.25, rng.uniform(0.2, 0.7, m), 0.0)
    occl_on = rng.random(m) < 0.85
    hat_col = rng.uniform(0.05, 0.95, (n, 3))
    mask_col = np.where(rng.random((n, 1)) < 0.6, np.array([0.62, 0.8, 0.9]), np.array([0.92, 0.92, 0.92]))
    # lighting (applied after pooling)
    bright = rng.uniform(0.85, 1.12, m)
    cast = rng.uniform(0.96, 1.04, (m, 3)) * per(cast_person)
    ang = rng.uniform(0, 2 * math.pi, m)
    strength = rng.uniform(0.0, 0.2, m)
    noise_amplitude = rng.uniform(1.5, 6.0, m)
    params = _FaceParams(
        rotation_cos=np.cos(rot),
        rotation_sin=np.sin(rot),
        offset_x=offset_x,
        offset_y=offset_y,
        head_half_width=per(hw) * scale,
        head_half_height=per(hw * aspect) * scale,
        chin_taper=per(taper),
        skin_colour=per(skin),
        hair_colour=per(hair),
        brow_colour=per(brow),
        iris_colour=per(eye_col),
        lip_colour=per(lip),
        clothes_colour=per(cloth),
        frame_colour=per(frame_col),
        hat_colour=per(hat_col),
        mask_colour=per(mask_col),
        background_colour=background,
        background_gradient=background_gradient,
        eye_y=per(ey),
        eye_x=per(ex),
        eye_half_width=per(erx),
        eye_half_height=per(erx * eye_h) * openness,
        iris_radius=per(iris_r),
        gaze=gaze,
        brow_thickness=per(brow_th),
        brow_raise=brow_raise,
        nose_length=per(nose_len),
        mouth_half_width=mouth_half_width,
        lip_thickness=per(lip_th),
        smile=smile,
        mouth_open=mouth_open,
        childhood=per(child),
        ageing=per(old),
        blush=per(blush),
        acne=per(acne),
        acne_spots=per(acne_pos),
        forehead_lines=per(np.stack([marks["fl0"], marks["fl1"], marks["fl2"]], axis=1)),
        crows_feet=per(marks["crow"]),
        eye_bags=per(marks["bags"]),
        nasolabial_folds=per(marks["naso"]),
        marionette_lines=per(marks["mario"]),
        age_spots=per(marks["spots"]),
        age_spot_positions=per(spot_pos),
        hair_volume=per(hair_vol),
        hairline=per(np.where(bangs, np.maximum(hairline, -0.42) + 0.06, hairline)),
        hairline_curve=per(np.where(bangs, 0.35, 0.9)),
        hair_opacity=per(hair_alpha),
        side_hair_length=per(side_len),
        long_hair_length=per(long_hair),
        baldness=per(np.clip((recede - 0.55) * 2.5, 0, 1)),
        beard=per(beard),
        glasses=per(glasses.astype(float)),
        sunglasses=(per(sunglasses) & occl_on).astype(float),
        hat=(per(hat) & occl_on).astype(float),
        face_mask=(per(face_mask) & occl_on).astype(float),
        light=bright[:, None] * cast,
        light_gradient_x=strength * np.cos(ang),
        light_gradient_y=strength * np.sin(ang),
        greyscale=per(greyscale.astype(float)),
        noise_amplitude=noise_amplitude,
    ).quantized()
    noise_seed = int(rng.integers(0, 2**63, size=1, dtype=np.int64)[0])
    return persons, params, noise_seed


def sample_persons(cfg: DatasetConfig) -> SyntheticPersons:
    """The persons (labels, true ages, hard cases) of ``generate_synthetic(cfg)``, without drawing images."""
    return _draw(cfg)[0]


# ----------------------------------------------------------------------------
# rasterization


class _Canvas:
    """Float32 RGB canvases of ``B`` images in head-normalized coordinates.

    ``U``/``V``: coordinates in units of the head's half-width/half-height,
    head centre at (0, 0), V pointing down; ``A = |U|`` for left/right
    symmetric features.
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
        self.B = B
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


def _render(p: _FaceParams, size: int) -> np.ndarray:
    """Draw ``B`` faces: float32 ``[B, 3, size, size]`` in 0..1, before lighting and noise."""
    ss = max(2, -(-64 // size))
    res = size * ss
    cv = _Canvas(p, res)
    U, V, A = cv.U, cv.V, cv.A
    one = np.float32(1)
    hh_f = p.head_half_height  # frame units per V unit
    hw_f = p.head_half_width

    # background with a vertical gradient
    bgf = 1 + p.background_gradient * cv.Y
    for c, channel in enumerate(_rgb(p.background_colour)):
        np.multiply(channel, bgf, out=cv.img[c])

    skin = _rgb(p.skin_colour)
    hair = _rgb(p.hair_colour)

    # clothes and long hair behind the head
    cv.paint(cv.ellipse(U, 0, 1.85, 1.9, 0.62), _rgb(p.clothes_colour))
    long_m = (A < p.hair_volume * 0.98) & (V > 0) & (V < p.long_hair_length)
    cv.blend(long_m, [h * 0.8 for h in hair], p.hair_opacity)
    # neck and ears
    cv.paint((A < 0.4) & (V > 0.3) & (V < 1.6), [s * 0.82 for s in skin])
    ear_y = p.eye_y + 0.12
    cv.paint(cv.ellipse(A, 0.97, ear_y, 0.13, 0.2), [s * 0.9 for s in skin])

    # head: egg shape, narrower at the chin
    np.multiply(V, p.chin_taper, out=cv.t1)
    cv.t1 += one
    cv.t1 *= U
    cv.t1 *= cv.t1
    head_d = cv.t1 + V * V
    head = head_d < 1
    cv.paint(head, skin)
    # shading towards the silhouette
    rim = head & (head_d > 0.72)
    cv.shade(rim, 0.07 + 0.2 * p.ageing)

    ey, ex, erx, ery = p.eye_y, p.eye_x, p.eye_half_width, p.eye_half_height
    nose_y = ey + p.nose_length
    mouth_y = nose_y + 0.22 - 0.05 * p.childhood
    mw = p.mouth_half_width
    th = 0.05 / hh_f  # half thickness of a fine line, in V units

    # cheeks
    blush_col = [np.float32(0.95), np.float32(0.45), np.float32(0.5)]
    cv.blend(cv.ellipse(A, 0.52, nose_y + 0.03, 0.2, 0.12), blush_col, p.blush)
    acne_col = [np.float32(0.78), np.float32(0.25), np.float32(0.25)]
    for k in range(4):
        cv.blend(cv.ellipse(U, p.acne_spots[..., k, 0], p.acne_spots[..., k, 1], 0.07, 0.055), acne_col, p.acne)

    # wrinkles: forehead lines, crow's feet, eye bags, nasolabial and marionette lines
    for k in range(3):
        fl = ey - 0.28 - k * 0.11
        cv.shade(cv.line(fl, 0.12, 0, 0.42 - 0.05 * k, th), p.forehead_lines[..., k])
    corner = ex + erx
    for slope in (-0.45, 0.0, 0.45):
        cv.shade(cv.line(ey - slope * corner, slope, corner + 0.02, corner + 0.16, th), p.crows_feet)
    bags = cv.dist(A, ex, ey + ery * 1.5, erx * 0.9, ery * 0.9)
    cv.shade((bags < 1) & (bags > 0.45) & (V > ey + ery * 1.5), p.eye_bags)
    nl_slope = 0.25 / (mw + 0.05 - 0.16)
    cv.shade(cv.line(nose_y - 0.06 - 0.16 * nl_slope, nl_slope, 0.16, mw + 0.05, th * 1.2), p.nasolabial_folds)
    cv.shade(cv.line(mouth_y - (mw + 0.02) * 8.0, 8.0, mw + 0.02, mw + 0.05, th), p.marionette_lines)
    for k in range(3):
        cv.shade(cv.ellipse(U, p.age_spot_positions[..., k, 0], p.age_spot_positions[..., k, 1], 0.05, 0.04), p.age_spots)

    # nose: nostril shadow and a shaded side
    cv.shade(cv.ellipse(U, 0, nose_y, 0.11 * (1 - 0.3 * p.childhood), 0.045), 0.22)
    cv.shade((np.abs(U - 0.07) < 0.025) & (V > ey + 0.1) & (V < nose_y - 0.02), 0.1)

    # beard / stubble
    beard_m = head & (V > nose_y + 0.02) & ~cv.ellipse(U, 0, mouth_y, mw * 1.05, 0.09)
    cv.blend(beard_m, [h * 0.9 for h in hair], p.beard)

    # mouth (a curved ellipse: smile), open mouth inside
    np.multiply(U, U, out=cv.t2)
    cv.t2 *= (0.07 * p.smile) / (mw * mw)
    mouth_c = mouth_y - cv.t2  # centre line of the mouth
    lip_h = 0.045 * p.lip_thickness + 0.04 * p.mouth_open
    lips = ((U / mw) ** 2 + ((V - mouth_c) / lip_h) ** 2) < 1
    cv.paint(lips, _rgb(p.lip_colour))
    inner = ((U / (mw * 0.75)) ** 2 + ((V - mouth_c) / (lip_h * p.mouth_open * 0.75 + 1e-3)) ** 2) < 1
    cv.paint(inner, [np.float32(0.25), np.float32(0.05), np.float32(0.07)])
    cv.shade((np.abs(V - mouth_c) < th * 0.8) & (np.abs(U) < mw * 0.95), 0.35)

    # eyes: sclera, iris, pupil, upper lid
    sclera = cv.ellipse(A, ex, ey, erx, ery)
    cv.paint(sclera, [np.float32(0.96), np.float32(0.95), np.float32(0.93)])
    ir = erx * p.iris_radius
    # both eyes look the same way: |U| would mirror the gaze, so shift U first
    iris_x = np.abs(U - p.gaze * erx * 0.35)
    iris_ry = ir * hw_f / hh_f
    iris = sclera & cv.ellipse(iris_x, ex, ey, ir, iris_ry)
    cv.paint(iris, _rgb(p.iris_colour))
    pupil = sclera & cv.ellipse(iris_x, ex, ey, ir * 0.45, iris_ry * 0.45)
    cv.paint(pupil, [np.float32(0.03)] * 3)
    lid = cv.dist(A, ex, ey, erx * 1.12, ery * 1.35 + 0.02)
    cv.shade((lid < 1) & ~sclera & (V < ey), 0.25 + 0.15 * p.ageing)

    # eyebrows: arched bands
    bx = A - ex
    brow_c = ey - ery - 0.11 - p.brow_raise + 0.9 * bx * bx
    brow_h = 0.03 * p.brow_thickness / (hh_f / 0.7)
    brows = (np.abs(V - brow_c) < brow_h) & (np.abs(bx) < erx * 1.3)
    cv.blend(brows, _rgb(p.brow_colour), 1 - 0.5 * (1 - p.brow_thickness.clip(0, 1)) * p.childhood)

    # hair: cap over the head, hairline (with fringe), receding top
    cap_d = cv.dist(U, 0, -0.08, p.hair_volume, p.hair_volume * 1.05)
    cap = (cap_d < 1) & (V < p.side_hair_length)
    np.multiply(U, U, out=cv.t2)
    cv.t2 *= p.hairline_curve
    cv.t2 += p.hairline
    cap &= (V < cv.t2) | ~head
    bald_top = cv.ellipse(U, 0, -0.75, 0.7 * p.baldness + 1e-3, 0.45 * p.baldness + 1e-3)
    cap &= ~bald_top
    cv.blend(cap, hair, p.hair_opacity)

    # glasses, sunglasses, hat, face mask
    gl = cv.dist(A, ex, ey, erx * 1.45, erx * 1.1 * hw_f / hh_f)
    ring = (gl < 1) & (gl > 0.72)
    bridge = (A < ex - erx * 1.2) & (np.abs(V - ey + 0.03) < th)
    cv.blend(ring | bridge, _rgb(p.frame_colour), p.glasses)
    sun_col = [np.float32(0.06), np.float32(0.07), np.float32(0.1)]
    cv.blend((gl < 1) | bridge, sun_col, p.sunglasses)
    hat_line = ey - 0.5
    hat_m = ((cv.dist(U, 0, -0.1, 1.18, 1.15) < 1) & (V < hat_line)) | (
        (np.abs(V - hat_line) < 0.06) & (A < 1.32)
    )
    cv.blend(hat_m, _rgb(p.hat_colour), p.hat)
    mask_m = (A < 0.98) & (V > nose_y - 0.1) & (cv.dist(U, 0, 0.1, 1.0, 0.9) < 1)
    cv.blend(mask_m, _rgb(p.mask_colour), p.face_mask)

    # anti-alias: average-pool to the output size (explicit sums in a fixed order)
    blocks = cv.img.reshape(3, cv.B, size, ss, size, ss)
    out = np.zeros((3, cv.B, size, size), dtype=np.float32)
    for i in range(ss):
        for j in range(ss):
            out += blocks[:, :, :, i, :, j]
    out *= np.float32(1.0 / (ss * ss))
    return out.transpose(1, 0, 2, 3)


def _finish(img: np.ndarray, p: _FaceParams, noise: np.ndarray) -> np.ndarray:
    """Lighting, greyscale, noise; float [B, 3, S, S] in 0..1 -> uint8."""
    B, _, S, _ = img.shape
    coords = ((np.arange(S, dtype=np.float32) + 0.5) / S * 2 - 1).astype(np.float32)
    grad = 1 + p.light_gradient_x[:, :, None] * coords[None, None, :] + p.light_gradient_y[:, :, None] * coords[None, :, None]
    light = p.light.transpose(0, 2, 1)[:, :, :, None]  # [B, 3, 1, 1]
    img = img * grad[:, None] * light
    g = p.greyscale[:, :, None, None]
    lum = img[:, 0:1] * 0.3 + img[:, 1:2] * 0.59 + img[:, 2:3] * 0.11
    img = img + g * (lum - img)
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
        u = noise_rng.random((2, stop - start, 3, size, size), dtype=np.float32)
        images[start:stop] = _finish(img, p, u[0] + u[1] - 1)
    pid = np.repeat(persons.person_id, persons.num_images)
    return FaceDataset(
        images=images,
        age_group=persons.age_group[pid].astype(np.int64),
        age=persons.age[pid].astype(np.int64),
        person_id=pid.astype(np.int64),
        image_id=np.arange(m, dtype=np.int64),
    )
