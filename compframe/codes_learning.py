"""Labelled image sets and the features a classifier sees, for learning on compressed codes.

Datasets (all offline, from installed packages):

- ``digits``: scikit-learn's 1797 handwritten digits, 8 x 8 pixels scaled from 0..16 to [0, 1],
  10 classes.
- ``patches``: which image a patch comes from. Each image named in ``images`` (grey-level images that
  ship with scikit-image, e.g. the Brodatz-like textures ``brick``, ``grass`` and ``gravel``) is cut
  into non-overlapping ``patch`` x ``patch`` tiles (scaled from 0..255 to [0, 1]); the class of a
  tile is the index of its image.

Features from a code array (one row of codes per sample): ``ordinal`` (the integer codes as
numbers: right for ordered codes such as uniform levels or fixed point), ``onehot`` (one indicator
per position and code: for unordered codes such as codebook indices) and ``histogram`` (how often
each code occurs in the sample, position ignored: a bag of visual words over VQ tiles).
"""

from __future__ import annotations

import numpy as np

from .errors import DataError

DATASETS = ("digits", "patches")
FEATURES = ("ordinal", "onehot", "histogram")
CLASSIFIERS = ("logreg", "mlp")
MAX_FEATURES = 1 << 17


def load(dataset: str, images: list[str], patch: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(x, y, class_names)``: float32 images ``(n, h, w)`` in [0, 1] and int labels ``(n,)``."""
    if dataset == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64), [str(t) for t in d.target_names]
    if dataset == "patches":
        return _patches(images, patch)
    raise DataError(f"dataset '{dataset}' is unknown; choose from {', '.join(DATASETS)}")


def _patches(images: list[str], patch: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    import skimage.data

    tiles, labels = [], []
    for label, name in enumerate(images):
        loader = getattr(skimage.data, name, None)
        if loader is None or name.startswith("_"):
            raise DataError(f"dataset 'patches': skimage.data has no image '{name}'")
        image = np.asarray(loader())
        if image.ndim != 2 or image.dtype != np.uint8:
            raise DataError(f"dataset 'patches': image '{name}' is {image.dtype} {image.shape}; "
                            "grey-level uint8 images only (e.g. brick, grass, gravel, camera, moon, coins)")
        rows, cols = image.shape[0] // patch, image.shape[1] // patch
        if rows * cols == 0:
            raise DataError(f"dataset 'patches': image '{name}' {image.shape} is smaller than one {patch}-pixel patch")
        cut = image[:rows * patch, :cols * patch].reshape(rows, patch, cols, patch).transpose(0, 2, 1, 3)
        tiles.append(cut.reshape(-1, patch, patch).astype(np.float32) / 255.0)
        labels.append(np.full(rows * cols, label, dtype=np.int64))
    return np.concatenate(tiles), np.concatenate(labels), list(images)


def per_sample(codes: np.ndarray, n: int, name: str) -> np.ndarray:
    """The code array as ``(n, codes per sample)``; an array not made of whole samples is refused."""
    if codes.ndim == 0 or codes.shape[0] % n:
        raise DataError(f"code array '{name}' {codes.shape} does not split into {n} samples; "
                        "name a per-sample code array with 'codes' (e.g. 'Z' of lsvd/lplr)")
    return codes.reshape(n, -1)


def features(codes: np.ndarray, kind: str) -> np.ndarray:
    """Float32 features of per-sample codes ``(n, m)`` (see the module docstring for the kinds)."""
    if kind == "ordinal":
        return codes.astype(np.float32)
    offset = int(codes.min()) if codes.size else 0
    shifted = codes.astype(np.int64) - offset  # signed codes (fixed point) start at 0
    levels = int(shifted.max()) + 1 if codes.size else 1
    n, m = shifted.shape
    if kind == "histogram":
        counts = np.zeros((n, levels), np.float32)
        np.add.at(counts, (np.repeat(np.arange(n), m), shifted.reshape(-1)), 1.0)
        return counts
    if kind == "onehot":
        if m * levels > MAX_FEATURES:
            raise DataError(f"onehot features: {m} positions x {levels} codes = {m * levels} columns exceed "
                            f"{MAX_FEATURES}; use 'histogram' or fewer code bits")
        out = np.zeros((n, m * levels), np.float32)
        out[np.arange(n)[:, None], np.arange(m) * levels + shifted] = 1.0
        return out
    raise DataError(f"features '{kind}' is unknown; choose from {', '.join(FEATURES)}")


def classifier(kind: str, seed: int):
    """An unfitted scikit-learn classifier on standardized features: ``logreg`` or ``mlp`` (64 hidden
    units, stopped early when 10% of the training split held out stops improving)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logreg":
        model = LogisticRegression(max_iter=3000)
    elif kind == "mlp":
        model = MLPClassifier((64,), max_iter=300, early_stopping=True, random_state=seed)
    else:
        raise DataError(f"classifier '{kind}' is unknown; choose from {', '.join(CLASSIFIERS)}")
    return make_pipeline(StandardScaler(), model)
