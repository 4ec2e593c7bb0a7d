"""Logit-scaled confidence of the correct class (the quantity the attacks look at)."""

from __future__ import annotations

import numpy as np

from . import _validation

#: Added to both probabilities before the logarithms, as in the published code.
_LOG_FLOOR = 1e-45


def logit_scaled_confidence(logits, labels) -> np.ndarray:
    """Logit-scaled confidence ``log(p) - log(1 - p)`` of the correct class.

    Parameters
    ----------
    logits : array_like of real numbers, shape (n, C) or (N, n, C)
        Logits of n examples over C classes, optionally for N models at once.
        Any real dtype. Not modified. As in the published code, the row maximum is
        subtracted and the exponential taken in the logits' own dtype (float32
        stays float32; other dtypes become float64); the softmax is normalised
        in float64.
    labels : array_like of int, shape (n,)
        Correct class of each example, in ``[0, C)``.

    Returns
    -------
    ndarray of float64, shape (n,) or (N, n)
        ``log(p + 1e-45) - log(q + 1e-45)`` where, after subtracting each row's
        maximum logit and applying the softmax, ``p`` is the probability
        of the correct class and ``q`` the sum of the probabilities of the other
        classes (not ``1 - p``, which would lose all precision when ``p`` is near 1).

    Raises
    ------
    TypeError
        If ``logits`` is not real-valued or ``labels`` is not integer-valued.
    ValueError
        If ``logits`` is not 2-D or 3-D, ``labels`` does not have shape (n,), or a
        label is outside ``[0, C)``.

    Notes
    -----
    The values equal the published code's ``compute_logit_scaled_confidence``
    bit for bit, for float32 and float64 logits. Non-finite logits give NaN or infinite confidences, which the epsilon
    computation scores as the cap.
    """
    z, y = _validation.logits_labels(logits, labels)  # a C-ordered copy in float32 or float64
    with np.errstate(invalid="ignore", over="ignore"):  # only non-finite logits trigger these
        z -= np.max(z, axis=-1, keepdims=True)
        probs = np.exp(z).astype(np.float64)
        probs /= np.sum(probs, axis=-1, keepdims=True)
        index = np.broadcast_to(y[:, None], probs.shape[:-1] + (1,))
        correct = np.take_along_axis(probs, index, axis=-1)[..., 0]
        # q sums the other classes with the correct one set to 0 (the published order of summation).
        np.put_along_axis(probs, index, 0.0, axis=-1)
        wrong = np.sum(probs, axis=-1)
        return np.log(correct + _LOG_FLOOR) - np.log(wrong + _LOG_FLOOR)
