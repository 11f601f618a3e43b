"""The scikit-learn pipeline: raw process-log cells in, predicted yield out."""

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
        # Every node's test at once, then each walk follows its tree's outcomes. The cells
        # are widened to float64 first (exact), as the trees compare them to the thresholds.
        go_left = (X.astype(np.float64)[:, self.feature] <= self.threshold).ravel()
        at = self.roots if n_rows == 1 else self.roots + (np.arange(n_rows) * 0)[:, None]
        row = 0 if n_rows == 1 else (np.arange(n_rows) * len(self.feature))[:, None]
        for _ in range(self.depth):
            at = self.children[2 * at + go_left[row + at]]
        terms = np.empty((n_rows, len(self.roots) + 1))
        terms[:, 0] = self.init
        terms[:, 1:] = self.scaled[at]
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

    def predict(self, parsed: FloatArray) -> FloatArray:
        """Predictions for the parser's output (``ProcessLogParser.parse_columns``)."""
        X = self.durations.add_durations(parsed)[:, self.keep]
        missing = np.isnan(X)
        X = np.where(missing, self.statistics, X)
        if self.indicated is not None:
            X = np.hstack([X, missing[:, self.indicated]])
        return self.trees.predict(np.ascontiguousarray(X, dtype=np.float32))


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
