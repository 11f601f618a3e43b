"""The fitted numeric steps of the pipeline as plain array operations, for small batches.

For a few records, scikit-learn spends most of a prediction on input checks around each step.
``compile_tail`` rebuilds the steps after parsing (the out-of-range guard, step durations,
the amount ratio, near-constant columns dropped, median imputation with indicators, and
gradient-boosted trees, extremely randomised trees or their average) from their public
fitted attributes (``keep_``, ``statistics_``, ``indicator_.features_``, ``init_``,
``estimators_``, each tree's ``tree_`` arrays) as NumPy operations that walk every tree at
once; the guard, durations and ratio run their own unchecked array methods (``apply``,
``add_durations``, ``add_ratio``), the very code their ``transform`` runs. Any other kind of
pipeline gets None. It is a second implementation of ``Pipeline.predict``, kept for its
whole-request speed (benchmarks/README.md) and checked against it: ``verified_tail`` compares
the two bit for bit on probe rows that take both sides of the trees' splits, and drops the
compiled steps if they differ. The arithmetic is scikit-learn's: float32 inputs against
float64 thresholds; boosting adds each leaf value times the learning rate to the initial
prediction in stage order; a forest adds its trees' leaf values in order to zero and divides
by the number of trees; an unweighted vote takes ``np.average`` of its members' predictions.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingRegressor,
    RandomForestRegressor,
    VotingRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeRegressor

from yield_model.features import AmountRatio, DropNearConstant, FloatArray, StepDurations
from yield_model.guard import OutOfRangeGuard

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
class _Trees:
    """Every tree's nodes side by side, ``width`` nodes per tree, flattened, each node twice.

    A walk holds ``slot = 2 * node``; both slots of a node hold its feature and threshold,
    and ``children[slot + goes_left]`` is the slot of its right child (``goes_left`` 0) or
    its left child (1), so that a step of the walk is five array operations. A leaf's (or
    padding's) children are itself; a NaN goes right, as in scikit-learn.
    """

    feature: npt.NDArray[np.intp]
    threshold: FloatArray
    children: npt.NDArray[np.intp]
    value: FloatArray
    count: int
    width: int
    depth: int

    def leaf_values(self, X: FloatArray) -> FloatArray:
        """Each row's leaf value in each tree: a row per row of ``X``, a column per tree."""
        x = np.ascontiguousarray(X, dtype=np.float32)
        n_rows, n_features = x.shape
        flat = x.ravel()
        first = np.arange(self.count, dtype=np.intp) * (2 * self.width)
        slot = np.broadcast_to(first, (n_rows, self.count))
        feature, threshold, children = self.feature, self.threshold, self.children
        if n_rows == 1:
            for _ in range(self.depth):
                goes_left = flat.take(feature.take(slot)) <= threshold.take(slot)
                slot = children.take(slot + goes_left)
        else:
            # Row r's feature f is at r * n_features + f of the flattened rows.
            at_row = np.arange(n_rows, dtype=np.intp)[:, None] * n_features
            for _ in range(self.depth):
                goes_left = flat.take(feature.take(slot) + at_row) <= threshold.take(slot)
                slot = children.take(slot + goes_left)
        values: FloatArray = self.value.take(slot)
        return values


def _trees(trees: Sequence[Any]) -> _Trees | None:
    if not trees or not all(isinstance(t, DecisionTreeRegressor) for t in trees):
        return None
    structures = [t.tree_ for t in trees]
    if any(s.n_outputs != 1 for s in structures):
        return None
    width = max(s.node_count for s in structures)
    shape = (len(trees), width)
    feature = np.zeros(shape, dtype=np.intp)
    threshold = np.zeros(shape, dtype=np.float64)
    # Node positions in the flattened arrays; a leaf (or padding) points at itself.
    own = np.arange(width, dtype=np.intp) + width * np.arange(len(trees))[:, None]
    left, right = own.copy(), own.copy()
    value = np.zeros(shape, dtype=np.float64)
    for i, s in enumerate(structures):
        count, split = s.node_count, s.children_left != _LEAF
        feature[i, :count] = np.where(split, s.feature, 0)
        threshold[i, :count] = s.threshold
        left[i, :count] = np.where(split, s.children_left + i * width, own[i, :count])
        right[i, :count] = np.where(split, s.children_right + i * width, own[i, :count])
        value[i, :count] = s.value[:, 0, 0]
    return _Trees(
        feature=np.repeat(feature.ravel(), 2),
        threshold=np.repeat(threshold.ravel(), 2),
        children=2 * np.column_stack([right.ravel(), left.ravel()]).ravel(),
        value=np.repeat(value.ravel(), 2),
        count=len(trees),
        width=width,
        depth=max(t.get_depth() for t in trees),
    )


def _in_order(X: FloatArray, first: float, terms: FloatArray) -> FloatArray:
    """``first`` plus each row's terms one by one, in order, as scikit-learn adds them."""
    steps = np.empty((X.shape[0], terms.shape[1] + 1), dtype=np.float64)
    steps[:, 0] = first
    steps[:, 1:] = terms
    total: FloatArray = np.add.accumulate(steps, axis=1)[:, -1]
    return total


@dataclass(frozen=True)
class _Boosting:
    init: float
    learning_rate: float
    trees: _Trees

    def __call__(self, X: FloatArray) -> FloatArray:
        return _in_order(X, self.init, self.learning_rate * self.trees.leaf_values(X))


@dataclass(frozen=True)
class _ForestMean:
    trees: _Trees

    def __call__(self, X: FloatArray) -> FloatArray:
        return _in_order(X, 0.0, self.trees.leaf_values(X)) / self.trees.count


@dataclass(frozen=True)
class _Vote:
    members: tuple[Tail, ...]

    def __call__(self, X: FloatArray) -> FloatArray:
        predictions = np.asarray([member(X) for member in self.members]).T
        result: FloatArray = np.average(predictions, axis=1)
        return result


def _tree_models(model: Any) -> list[Any]:
    """The fitted decision trees of a tree ensemble, in the order it adds them."""
    if isinstance(model, GradientBoostingRegressor):
        return [stage[0] for stage in model.estimators_[: model.n_estimators_]]
    if isinstance(model, ExtraTreesRegressor | RandomForestRegressor):
        return list(model.estimators_)
    if isinstance(model, VotingRegressor):
        return [tree for member in model.estimators_ for tree in _tree_models(member)]
    return []


def _boosting(model: GradientBoostingRegressor, n_features: int) -> Tail | None:
    if model.loss != "squared_error" or not isinstance(model.init_, DummyRegressor):
        return None
    trees = _trees(_tree_models(model))
    if trees is None:
        return None
    init = float(np.asarray(model.init_.predict(np.zeros((1, n_features)))).ravel()[0])
    return _Boosting(init=init, learning_rate=float(model.learning_rate), trees=trees)


def _forest(model: ExtraTreesRegressor | RandomForestRegressor) -> Tail | None:
    # Several jobs add the trees in whatever order the threads finish: no fixed sum.
    if model.n_jobs not in (None, 1) or model.n_outputs_ != 1:
        return None
    trees = _trees(_tree_models(model))
    return None if trees is None else _ForestMean(trees)


def _vote(model: VotingRegressor, n_features: int) -> Tail | None:
    if model.weights is not None:
        return None
    members = [_regressor(member, n_features) for member in model.estimators_]
    known = tuple(member for member in members if member is not None)
    return _Vote(known) if known and len(known) == len(members) else None


def _regressor(model: Any, n_features: int) -> Tail | None:
    """A fitted regressor of a supported kind as an array function, or None."""
    if isinstance(model, GradientBoostingRegressor):
        return _boosting(model, n_features)
    if isinstance(model, ExtraTreesRegressor | RandomForestRegressor):
        return _forest(model)
    if isinstance(model, VotingRegressor):
        return _vote(model, n_features)
    return None


def _array_step(step: Any) -> Tail | None:
    """A fitted transformer before the regressor as its unchecked array function, or None."""
    if isinstance(step, OutOfRangeGuard):
        return step.apply
    if isinstance(step, StepDurations):
        return step.add_durations
    if isinstance(step, AmountRatio):
        return step.add_ratio
    if isinstance(step, DropNearConstant):
        keep = np.asarray(step.keep_, dtype=bool)
        return lambda X: X[:, keep]
    return None


def _imputation(imputer: Any) -> _Imputation | None:
    if not isinstance(imputer, SimpleImputer) or imputer.keep_empty_features is not True:
        return None
    if imputer.indicator_ is None:
        return None
    return _Imputation(
        statistics=np.asarray(imputer.statistics_, dtype=np.float64),
        indicated=np.asarray(imputer.indicator_.features_, dtype=np.intp),
    )


def compile_tail(steps: Pipeline) -> Tail | None:
    """The steps after parsing as one array function, or None if they are not the packaged
    kind: transformers of this package (guard, durations, ratio, near-constant columns),
    then a pipeline of SimpleImputer (with indicators) and a supported tree ensemble.
    """
    *transformers, (_, regressor) = steps.steps
    functions = [_array_step(step) for _, step in transformers]
    chain = [f for f in functions if f is not None]
    dropped = any(isinstance(step, DropNearConstant) for _, step in transformers)
    if not dropped or len(chain) != len(functions) or not isinstance(regressor, Pipeline):
        return None
    if len(regressor.steps) != 2:
        return None
    imputation = _imputation(regressor[0])
    if imputation is None:
        return None
    n_features = int(regressor[0].n_features_in_) + len(imputation.indicated)
    predict = _regressor(regressor[1], n_features)
    if predict is None:
        return None

    def tail(X: FloatArray) -> FloatArray:
        for function in chain:
            X = function(X)
        return predict(imputation(X))

    return tail


def _probe_rows(steps: Pipeline, n_features: int, seed: int = 0) -> FloatArray:
    """Rows that take both branches of many splits: each input column that reaches the trees
    unchanged holds values at and just above the thresholds they split it at; the others
    hold clock times; a fifth of all values are missing."""
    drop = next(step for _, step in steps.steps if isinstance(step, DropNearConstant))
    thresholds: dict[int, list[float]] = {}
    for tree in _tree_models(steps[-1][-1]):
        s = tree.tree_
        split = s.children_left != _LEAF
        for f, t in zip(s.feature[split].tolist(), s.threshold[split].tolist(), strict=True):
            thresholds.setdefault(f, []).append(t)
    # The steps before the dropping only append columns: an input column keeps its place.
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
