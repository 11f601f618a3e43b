"""The scikit-learn pipeline: raw process-log cells in, predicted yield out."""

import math
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import (
    GradientBoostingRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from yield_model.columns import PROCESS_ORDER, TIME_POINT_COLUMNS, TIME_RANGE_COLUMNS
from yield_model.config import RegressorName, TrainingConfig
from yield_model.features import DropNearConstant, FloatArray, ProcessLogParser, StepDurations

try:  # the loop GradientBoostingRegressor.predict runs; private, hence the fallback
    from sklearn.ensemble._gradient_boosting import predict_stages
except ImportError:  # pragma: no cover - depends on the scikit-learn release
    predict_stages = None

_LEAF: Final = -1  # scikit-learn's child index of a leaf
#: Up to this many rows the trees are walked as arrays; beyond, by scikit-learn's loop.
_WALK_UP_TO: Final = 64
#: Below this many rows the regressor's input is computed row by row in Python floats
#: (~13 µs a row) rather than as arrays (~60 µs, about the same for up to 16 rows).
_ROW_BY_ROW_BELOW: Final = 5


def make_regressor(name: RegressorName, seed: int) -> Any:
    """The final estimator. ``gbr`` was chosen by holdout error; the README has the comparison."""
    impute = SimpleImputer(strategy="median", keep_empty_features=True, add_indicator=True)
    if name == "gbr":
        # Missingness carries information (a step that did not happen), hence the indicators.
        return make_pipeline(
            impute,
            GradientBoostingRegressor(
                learning_rate=0.04, n_estimators=600, max_depth=3, subsample=0.8, random_state=seed
            ),
        )
    if name == "hgb":
        return HistGradientBoostingRegressor(
            learning_rate=0.04,
            max_iter=600,
            max_leaf_nodes=15,
            min_samples_leaf=20,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        )
    if name == "rf":
        return make_pipeline(
            impute,
            RandomForestRegressor(
                n_estimators=300, min_samples_leaf=3, random_state=seed, n_jobs=1
            ),
        )
    return make_pipeline(impute, StandardScaler(), Ridge(1.0))


def build_pipeline(config: TrainingConfig | None = None) -> Pipeline:
    """An unfitted pipeline that takes a frame of the raw feature columns, in order."""
    config = config or TrainingConfig()
    pipeline = Pipeline(
        [
            (
                "parse",
                ProcessLogParser(time_points=TIME_POINT_COLUMNS, time_ranges=TIME_RANGE_COLUMNS),
            ),
            ("durations", StepDurations(stamps=PROCESS_ORDER)),
            ("drop_constant", DropNearConstant(max_share=config.max_constant_share)),
            ("regressor", make_regressor(config.regressor, config.seed)),
        ]
    )
    # Named columns flow between steps, so StepDurations finds its stamps by name.
    pipeline.set_output(transform="pandas")
    return pipeline


class _Trees:
    """A fitted GradientBoostingRegressor's trees as flat arrays, walked for all at once.

    ``predict_stages`` spends ~1 µs per tree fetching its arrays whatever the batch size, so a
    single record pays for 600 trees; walking them as arrays costs a few numpy calls per
    level. The leaf values are scaled by the learning rate and summed in stage order, as
    ``predict_stages`` does, so the sums are the same to the bit.
    """

    def __init__(self, regressor: GradientBoostingRegressor, n_features: int) -> None:
        trees = [estimator.tree_ for estimator in regressor.estimators_[:, 0]]
        sizes = np.array([tree.node_count for tree in trees])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        node = np.arange(sizes.sum())
        left = np.concatenate([t.children_left for t in trees])
        right = np.concatenate([t.children_right for t in trees])
        leaf = left == _LEAF
        shift = np.repeat(offsets, sizes)
        # A leaf points at itself, so every walk can take the deepest tree's number of steps.
        # children[2 * node + 1] is where a node's test sends a value that passes it (<=).
        self.children = np.stack(
            [np.where(leaf, node, right + shift), np.where(leaf, node, left + shift)], axis=1
        ).ravel()
        self.feature = np.where(leaf, 0, np.concatenate([t.feature for t in trees]))
        self.threshold = np.concatenate([t.threshold for t in trees])
        values = np.concatenate([t.value[:, 0, 0] for t in trees])
        self.scaled = regressor.learning_rate * values
        self.roots = offsets
        self.depth = max(t.max_depth for t in trees)
        # The walk steps through slots, 2 * node + passed, each holding its node's test and
        # leaf value; next_slot[slot] is 2 * the child the outcome leads to, to which the
        # child's outcome is added a level later (one addition a level, no multiplication).
        # The roots' tests, the first level, are gathered once.
        self.slot_feature = np.repeat(self.feature, 2)
        self.slot_threshold = np.repeat(self.threshold, 2)
        self.slot_scaled = np.repeat(self.scaled, 2)
        self.next_slot = 2 * self.children
        self.root_slots = 2 * self.roots
        self.root_feature = self.feature[self.roots]
        self.root_threshold = self.threshold[self.roots]
        self.n_features = n_features
        self.regressor = regressor
        zeros = np.zeros((1, n_features), dtype=np.float32)
        self.init = float(regressor._raw_predict_init(zeros)[0, 0])

    def predict(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """The regressor's predictions for a C-ordered float32 array."""
        n_rows = X.shape[0]
        if n_rows > _WALK_UP_TO and predict_stages is not None:
            # Many rows: scikit-learn's own loop over trees, now cheap per row.
            out = np.full((n_rows, 1), self.init)
            predict_stages(self.regressor.estimators_, X, self.regressor.learning_rate, out)
            return out[:, 0]
        # Each walk tests the nodes on its path only, all trees a level at a time. The cells
        # are widened to float64 first (exact), as the trees compare them to the thresholds.
        cells = X.astype(np.float64).ravel()
        many = n_rows > 1  # one row is at the start of cells: no offsets to add
        row = (np.arange(n_rows) * X.shape[1])[:, None] if many else 0  # each row's start
        first = row + self.root_feature if many else self.root_feature
        at = self.next_slot[self.root_slots + (cells[first] <= self.root_threshold)]
        for _ in range(self.depth - 1):
            cell = self.slot_feature[at]
            if many:
                cell += row
            at = self.next_slot[at + (cells[cell] <= self.slot_threshold[at])]
        terms = np.empty((n_rows, len(self.roots) + 1))
        terms[:, 0] = self.init
        terms[:, 1:] = self.slot_scaled[at]
        return np.add.accumulate(terms, axis=1)[:, -1]


class CompiledPipeline:
    """The fitted pipeline's arithmetic after parsing, on plain arrays, for the request path.

    The pipeline passes pandas frames between steps and checks its input at every step:
    ~10 ms per call whatever the batch size. This runs the same fitted steps' numbers
    (durations, kept columns, median imputation with indicators, the boosted trees) with no
    frame and no check. ``compile_pipeline`` builds it only for the structure it knows.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.durations: StepDurations = pipeline.named_steps["durations"]
        self.keep = np.flatnonzero(pipeline.named_steps["drop_constant"].keep_)
        imputer, regressor = pipeline.named_steps["regressor"]
        self.statistics = np.asarray(imputer.statistics_, dtype=np.float64)
        self.indicated = np.asarray(imputer.indicator_.features_) if imputer.add_indicator else None
        self.trees = _Trees(regressor, regressor.n_features_in_)
        # The same as Python lists, for _row_features.
        self._keep: list[int] = self.keep.tolist()
        self._statistics: list[float] = self.statistics.tolist()
        self._indicated: list[int] = [] if self.indicated is None else self.indicated.tolist()

    def predict(self, parsed: FloatArray) -> FloatArray:
        """Predictions for the parser's output (``ProcessLogParser.parse_columns``)."""
        if 0 < len(parsed) < _ROW_BY_ROW_BELOW:
            rows = [self._row_features(row) for row in parsed.tolist()]
            return self.trees.predict(np.array(rows, dtype=np.float64).astype(np.float32))
        X = self.durations.add_durations(parsed)[:, self.keep]
        missing = np.isnan(X)
        X = np.where(missing, self.statistics, X)
        if self.indicated is not None:
            X = np.hstack([X, missing[:, self.indicated]])
        return self.trees.predict(np.ascontiguousarray(X, dtype=np.float32))

    def _row_features(self, row: list[float]) -> list[float]:
        """One row's regressor input before the cast to float32, as ``predict`` computes it
        for many: durations, kept columns, medians for NaN, then the missing indicators."""
        full = row + self.durations.row_durations(row)
        kept = [full[k] for k in self._keep]
        isnan = math.isnan
        # Both lists have one entry per kept column: zip need not check (~1 µs).
        features = [s if isnan(v) else v for v, s in zip(kept, self._statistics, strict=False)]
        features += [1.0 if isnan(kept[k]) else 0.0 for k in self._indicated]
        return features


def compile_pipeline(pipeline: Any) -> CompiledPipeline | None:
    """The request-path form of a fitted ``build_pipeline`` pipeline with the ``gbr``
    regressor; None for any other structure, which then predicts through scikit-learn."""
    try:
        steps = pipeline.named_steps
        regressor = steps["regressor"]
        imputer, trees = regressor.steps[0][1], regressor.steps[-1][1]
    except (AttributeError, KeyError, TypeError, IndexError):
        return None
    known = (
        [name for name, _ in pipeline.steps] == ["parse", "durations", "drop_constant", "regressor"]
        and isinstance(steps["durations"], StepDurations)
        and isinstance(steps["drop_constant"], DropNearConstant)
        and len(regressor.steps) == 2
        and type(imputer) is SimpleImputer
        and isinstance(imputer.missing_values, float)
        and np.isnan(imputer.missing_values)
        and not np.isnan(np.asarray(imputer.statistics_, dtype=np.float64)).any()
        and type(trees) is GradientBoostingRegressor
        and trees.estimators_.shape[1] == 1
        and (trees.init_ == "zero" or isinstance(trees.init_, DummyRegressor))
    )
    return CompiledPipeline(pipeline) if known else None
