"""The fitted numeric steps of the pipeline as plain array operations, for small batches.

For a few records, scikit-learn spends most of a prediction on input checks around each step.
``compile_tail`` rebuilds the steps after parsing (step durations, near-constant columns
dropped, median imputation with indicators, gradient-boosted trees) from their public fitted
attributes (``keep_``, ``statistics_``, ``indicator_.features_``, ``init_``, ``estimators_``,
each tree's ``tree_`` arrays) as NumPy operations that walk every tree at once; any other
kind of pipeline gets None. It is a second implementation of ``Pipeline.predict``, kept for
its whole-request speed (benchmarks/README.md) and checked against it: ``verified_tail``
compares the two bit for bit on probe rows that take both sides of the trees' splits, and
drops the compiled steps if they differ. The arithmetic is scikit-learn's: float32 inputs
against float64 thresholds, each leaf value times the learning rate added in stage order.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeRegressor

from yield_model.features import DropNearConstant, FloatArray, StepDurations

logger = logging.getLogger(__name__)

Tail = Callable[[FloatArray], FloatArray]
_LEAF = -1
_PROBE_ROWS = 512


@dataclass(frozen=True)
class _Imputation:
    statistics: FloatArray
    indicated: npt.NDArray[np.intp]

    def __call__(self, X: FloatArray) -> FloatArray:
        missing = np.isnan(X)
        filled = np.where(missing, self.statistics, X)
        return np.hstack([filled, missing[:, self.indicated].astype(np.float64)])


@dataclass(frozen=True)
class _Forest:
    """Every tree's nodes side by side, a row per tree; a leaf's children are itself."""

    init: float
    learning_rate: float
    feature: npt.NDArray[np.intp]
    threshold: FloatArray
    left: npt.NDArray[np.intp]
    right: npt.NDArray[np.intp]
    value: FloatArray
    depth: int

    def __call__(self, X: FloatArray) -> FloatArray:
        x = np.ascontiguousarray(X, dtype=np.float32)
        n_trees, n_nodes = self.feature.shape
        rows = np.arange(x.shape[0])[:, None]
        base = np.arange(n_trees) * n_nodes
        node = np.broadcast_to(base, (x.shape[0], n_trees))
        for _ in range(self.depth):
            goes_left = x[rows, self.feature.ravel()[node]] <= self.threshold.ravel()[node]
            node = np.where(goes_left, self.left.ravel()[node], self.right.ravel()[node])
        steps = np.empty((x.shape[0], n_trees + 1), dtype=np.float64)
        steps[:, 0] = self.init
        steps[:, 1:] = self.learning_rate * self.value.ravel()[node]
        # The running sum adds the stages one by one, in order, as scikit-learn does.
        result: FloatArray = np.add.accumulate(steps, axis=1)[:, -1]
        return result


def _forest(model: GradientBoostingRegressor, n_features: int) -> _Forest | None:
    if model.loss != "squared_error" or not isinstance(model.init_, DummyRegressor):
        return None
    trees: list[Any] = [stage[0] for stage in model.estimators_[: model.n_estimators_]]
    if not trees or not all(isinstance(t, DecisionTreeRegressor) for t in trees):
        return None
    structures = [t.tree_ for t in trees]
    if any(s.n_outputs != 1 for s in structures):
        return None
    n_nodes = max(s.node_count for s in structures)
    shape = (len(trees), n_nodes)
    feature = np.zeros(shape, dtype=np.intp)
    threshold = np.zeros(shape, dtype=np.float64)
    # Node positions in the flattened arrays; a leaf (or padding) points at itself.
    left = np.arange(n_nodes, dtype=np.intp) + n_nodes * np.arange(len(trees))[:, None]
    right = left.copy()
    value = np.zeros(shape, dtype=np.float64)
    for i, s in enumerate(structures):
        count, split = s.node_count, s.children_left != _LEAF
        feature[i, :count] = np.where(split, s.feature, 0)
        threshold[i, :count] = s.threshold
        left[i, :count] = np.where(split, s.children_left + i * n_nodes, left[i, :count])
        right[i, :count] = np.where(split, s.children_right + i * n_nodes, right[i, :count])
        value[i, :count] = s.value[:, 0, 0]
    init = float(np.asarray(model.init_.predict(np.zeros((1, n_features)))).ravel()[0])
    return _Forest(
        init=init,
        learning_rate=float(model.learning_rate),
        feature=feature,
        threshold=threshold,
        left=left,
        right=right,
        value=value,
        depth=max(t.get_depth() for t in trees),
    )


def compile_tail(steps: Pipeline) -> Tail | None:
    """The steps after parsing as one array function, or None if they are not the packaged
    kind (StepDurations, DropNearConstant, then SimpleImputer and GradientBoostingRegressor).
    """
    kinds = [type(step) for _, step in steps.steps]
    if kinds != [StepDurations, DropNearConstant, Pipeline]:
        return None
    durations, drop, regressor = (step for _, step in steps.steps)
    if [type(step) for _, step in regressor.steps] != [SimpleImputer, GradientBoostingRegressor]:
        return None
    imputer, boosting = (step for _, step in regressor.steps)
    indicator = imputer.indicator_
    if indicator is None or imputer.keep_empty_features is not True:
        return None
    imputation = _Imputation(
        statistics=np.asarray(imputer.statistics_, dtype=np.float64),
        indicated=np.asarray(indicator.features_, dtype=np.intp),
    )
    forest = _forest(boosting, int(imputer.n_features_in_) + len(imputation.indicated))
    if forest is None:
        return None
    keep = np.asarray(drop.keep_, dtype=bool)

    def tail(X: FloatArray) -> FloatArray:
        return forest(imputation(durations.add_durations(X)[:, keep]))

    return tail


def _probe_rows(steps: Pipeline, n_features: int, seed: int = 0) -> FloatArray:
    """Rows that take both branches of many splits: each input column that reaches the trees
    unchanged holds values at and just above the thresholds they split it at; the others
    hold clock times; a fifth of all values are missing."""
    drop, regressor = steps[1], steps[2]
    boosting = regressor[-1]
    thresholds: dict[int, list[float]] = {}
    for stage in boosting.estimators_[: boosting.n_estimators_]:
        s = stage[0].tree_
        split = s.children_left != _LEAF
        for f, t in zip(s.feature[split].tolist(), s.threshold[split].tolist(), strict=True):
            thresholds.setdefault(f, []).append(t)
    at_tree = {int(c): i for i, c in enumerate(np.flatnonzero(drop.keep_))}
    rng = np.random.default_rng(seed)
    rows = rng.uniform(0.0, 24.0, size=(_PROBE_ROWS, n_features))
    for column in range(n_features):
        found = thresholds.get(at_tree.get(column, -1))
        if found:
            at = np.asarray(found, dtype=np.float32)
            above = np.nextafter(at, np.float32(np.inf))
            rows[:, column] = rng.choice(np.concatenate([at, above]), size=_PROBE_ROWS)
    rows[rng.random(rows.shape) < 0.2] = np.nan
    return rows


def verified_tail(steps: Pipeline, n_features: int) -> Tail | None:
    """``compile_tail``, kept only if it gives exactly what ``steps.predict`` gives."""
    tail = compile_tail(steps)
    if tail is None:
        return None
    probe = _probe_rows(steps, n_features)
    if not np.array_equal(tail(probe), np.asarray(steps.predict(probe), dtype=np.float64)):
        logger.warning(
            "the compiled steps differ from scikit-learn's on probe rows; "
            "predicting with scikit-learn alone"
        )
        return None
    return tail
