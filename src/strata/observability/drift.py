"""Input drift of one route: the Population Stability Index (PSI) of a current window of input vectors
against a reference window, on random projections.

Vectors (sentence embeddings, or a predict route's numeric features) have too many dimensions to bin
one by one, and their dimensions are not independent. So each vector is projected on ``projections``
fixed random unit directions (a seeded Gaussian matrix: every gateway projects alike); each projection
is binned at the reference window's quantiles (``bins`` equally filled bins), and

    PSI = sum over bins of (current share - reference share) * ln(current share / reference share)

is computed per projection; the route's score is the mean over projections. Rules of thumb for PSI:
under 0.1 no shift, 0.1 to 0.25 a moderate one, over 0.25 a significant one (the shipped alert's
threshold). With ``n`` samples per window and ``b`` bins, sampling noise alone gives about
``(b - 1) * 2 / n`` (0.036 with the defaults), so windows must not be made too small.
"""

from __future__ import annotations

from collections import deque

import numpy as np

_EPSILON = 1e-4  # an empty bin's share: keeps ln() finite, caps one empty bin's term
_SEED = 20_161  # the projections' seed: fixed, so scores compare across gateways and restarts


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI of two bin-share vectors (each summing to 1)."""
    ref = np.maximum(reference, _EPSILON)
    cur = np.maximum(current, _EPSILON)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


class ProjectedPSI:
    """The reference's projection and bin edges, fitted once; ``score`` of any later window."""

    def __init__(self, reference: np.ndarray, *, projections: int, bins: int) -> None:
        rng = np.random.default_rng(_SEED)
        directions = rng.standard_normal((reference.shape[1], projections))
        self.directions = directions / np.linalg.norm(directions, axis=0, keepdims=True)
        projected = reference @ self.directions  # (samples, projections)
        inner = np.linspace(0, 1, bins + 1)[1:-1]
        self.edges = np.quantile(projected, inner, axis=0).T  # (projections, bins - 1)
        self.bins = bins
        self.reference_shares = self._shares(projected)

    def _shares(self, projected: np.ndarray) -> np.ndarray:
        shares = np.empty((projected.shape[1], self.bins))
        for index in range(projected.shape[1]):
            which = np.searchsorted(self.edges[index], projected[:, index], side="right")
            shares[index] = np.bincount(which, minlength=self.bins) / len(projected)
        return shares

    def score(self, window: np.ndarray) -> float:
        shares = self._shares(window @ self.directions)
        return float(np.mean([psi(r, c) for r, c in zip(self.reference_shares, shares, strict=True)]))


class RouteWindows:
    """The reference (the first ``reference_samples`` vectors) and the sliding current window of one
    route. ``add`` returns a new score each time a quarter of the window has been replaced."""

    def __init__(self, *, reference_samples: int, window_samples: int, projections: int, bins: int) -> None:
        self.reference_samples = reference_samples
        self.projections = projections
        self.bins = bins
        self.reference: list[np.ndarray] = []
        self.current: deque[np.ndarray] = deque(maxlen=window_samples)
        self.statistic: ProjectedPSI | None = None
        self._every = max(1, window_samples // 4)
        self._since_score = 0

    def add(self, vector: np.ndarray) -> float | None:
        if self.statistic is None:
            if self.reference and vector.shape != self.reference[0].shape:
                return None  # a vector of another width (a model swap mid-reference): not comparable
            self.reference.append(vector)
            if len(self.reference) == self.reference_samples:
                matrix = np.vstack(self.reference)
                self.statistic = ProjectedPSI(matrix, projections=self.projections, bins=self.bins)
            return None
        if vector.shape[0] != self.statistic.directions.shape[0]:
            return None
        self.current.append(vector)
        self._since_score += 1
        if len(self.current) < (self.current.maxlen or 0) or self._since_score < self._every:
            return None
        self._since_score = 0
        return self.statistic.score(np.vstack(self.current))
