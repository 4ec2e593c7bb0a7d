"""A PNG grid of sample images, one row per age group (for the data page)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unlearning_challenge.atomic import atomic_path
from unlearning_challenge.data.dataset import NUM_AGE_GROUPS, DataError, FaceDataset


def save_preview_grid(
    dataset: FaceDataset,
    path: str | Path,
    *,
    per_group: int = 8,
    indices: np.ndarray | None = None,
    seed: int = 0,
    title: str | None = None,
) -> Path:
    """Write a grid of images (rows: age groups 0..9, up to ``per_group`` columns) to ``path``.

    Each row is labelled with its group, the recorded age range seen in the
    data and the number of images. Images are picked from ``indices`` (default:
    all) at random with ``seed``, one per person first, so a row shows as many
    different persons as it can. Empty groups give an empty, labelled row.
    The PNG is written atomically; returns its path.
    """
    if per_group < 1:
        raise DataError(f"per_group must be at least 1, got {per_group}")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    path = Path(path)
    pool = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
    rng = np.random.Generator(np.random.PCG64(seed))
    rows: list[np.ndarray] = []
    labels: list[str] = []
    for g in range(NUM_AGE_GROUPS):
        members = pool[dataset.age_group[pool] == g]
        if len(members):
            members = rng.permutation(members)
            # one image per person first, then the rest
            _, first = np.unique(dataset.person_id[members], return_index=True)
            rest = np.setdiff1d(np.arange(len(members)), first)
            order = np.concatenate([rng.permutation(first), rest])
            members = members[order]
        chosen = members[:per_group]
        rows.append(chosen)
        if len(members):
            ages = dataset.age[members]
            labels.append(f"group {g}\nages {ages.min()}-{ages.max()}\nn={len(members)}")
        else:
            labels.append(f"group {g}\n(empty)")

    cell = 0.9
    fig = Figure(figsize=(1.3 + cell * per_group, cell * NUM_AGE_GROUPS + (0.4 if title else 0.1)))
    axes = fig.subplots(NUM_AGE_GROUPS, per_group, squeeze=False)
    for g, chosen in enumerate(rows):
        for j in range(per_group):
            ax = axes[g, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(chosen):
                ax.imshow(dataset.images[chosen[j]].transpose(1, 2, 0), interpolation="nearest")
        axes[g, 0].set_ylabel(labels[g], rotation=0, ha="right", va="center", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=1.2 / (1.3 + cell * per_group), right=0.99, top=0.95 if title else 0.99,
                        bottom=0.01, wspace=0.05, hspace=0.05)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path
