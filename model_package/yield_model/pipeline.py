"""The scikit-learn pipeline: raw process-log cells in, predicted yield out."""

from typing import Any, Final

import pandas as pd
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
    VotingRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from yield_model.columns import (
    FEATURE_COLUMNS,
    NUMERIC_COLUMNS,
    PROCESS_ORDER,
    TIME_POINT_COLUMNS,
    TIME_RANGE_COLUMNS,
)
from yield_model.config import RegressorName, TrainingConfig
from yield_model.encoding import with_target_encoding
from yield_model.features import (
    AmountRatio,
    DropNearConstant,
    ProcessLogParser,
    StepDurations,
    parsed_column_names,
    step_duration_names,
)
from yield_model.guard import OutOfRangeGuard

#: What comes out (B14) and what goes in (the materials), for ``AmountRatio``.
PRODUCT_AMOUNT: Final = "B14"
MATERIAL_AMOUNTS: Final = ("A1", "A3", "A4", "A19", "B1", "B12")


def _boosting(seed: int) -> GradientBoostingRegressor:
    # 500 trees at 0.05 on half the features per split beat 200 at 0.12 on all of them in
    # 5-fold CV on the published file, alone and in the average (benchmarks/README.md).
    return GradientBoostingRegressor(
        learning_rate=0.05,
        n_estimators=500,
        max_depth=3,
        subsample=0.8,
        max_features=0.5,
        random_state=seed,
    )


def _extra_trees(seed: int) -> ExtraTreesRegressor:
    # Leaves of at least 3 batches: 1 and 2 overfit, 5 underfit in 5-fold CV. 100 trees of
    # depth at most 16 score as 300 unbounded ones (benchmarks/README.md), at a sixth of the
    # nodes to walk.
    return ExtraTreesRegressor(
        n_estimators=100,
        min_samples_leaf=3,
        max_depth=16,
        max_features=1.0,
        random_state=seed,
        n_jobs=1,
    )


def make_regressor(name: RegressorName, seed: int) -> Any:
    """The final estimator; ``gbr_et`` was chosen by 5-fold CV (benchmarks/model_quality.py)."""
    # Missingness carries information (a step that did not happen), hence the indicators.
    impute = SimpleImputer(strategy="median", keep_empty_features=True, add_indicator=True)
    if name == "gbr_et":
        # Two kinds of trees err differently: their plain average beats either alone.
        both = VotingRegressor([("gbr", _boosting(seed)), ("et", _extra_trees(seed))])
        return make_pipeline(impute, both)
    if name == "gbr":
        return make_pipeline(impute, _boosting(seed))
    if name == "et":
        return make_pipeline(impute, _extra_trees(seed))
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
    """An unfitted pipeline that takes the raw feature columns: a frame (read by column name)
    or an array of cells in the published order.

    The parser turns either into a plain array, and the steps after it pass plain arrays, so
    the steps that read columns by name are told the names of their input's columns.
    """
    config = config or TrainingConfig()
    parsed = parsed_column_names(FEATURE_COLUMNS, TIME_RANGE_COLUMNS)
    timed = step_duration_names(parsed, PROCESS_ORDER)
    steps: list[tuple[str, Any]] = [
        (
            "parse",
            ProcessLogParser(
                time_points=TIME_POINT_COLUMNS,
                time_ranges=TIME_RANGE_COLUMNS,
                columns=FEATURE_COLUMNS,
            ),
        ),
        (
            "guard",
            OutOfRangeGuard(features=NUMERIC_COLUMNS, columns=parsed, widen=config.range_widening),
        ),
        ("durations", StepDurations(stamps=PROCESS_ORDER, columns=parsed)),
    ]
    if config.amount_ratio:
        ratio = AmountRatio(numerator=PRODUCT_AMOUNT, denominators=MATERIAL_AMOUNTS, columns=timed)
        steps.append(("ratio", ratio))
    if config.target_encoding:
        steps.append(("encode", with_target_encoding(config.seed)))
    steps += [
        ("drop_constant", DropNearConstant(max_share=config.max_constant_share)),
        ("regressor", make_regressor(config.regressor, config.seed)),
    ]
    return Pipeline(steps)


def engineered_steps(pipeline: Pipeline) -> Pipeline:
    """The parsing and step-duration steps of a pipeline (the same objects, fitted or not):
    the features the card's drift references describe. The guard is left out: drift should
    see an impossible value as it arrived, which the model treats as missing."""
    return Pipeline([(name, pipeline.named_steps[name]) for name in ("parse", "durations")])


def engineered_frame(pipeline: Pipeline, X: pd.DataFrame) -> pd.DataFrame:
    """The features after parsing and step durations of a fitted pipeline, by name (before
    near-constant columns are dropped)."""
    steps = engineered_steps(pipeline)
    return pd.DataFrame(steps.transform(X), columns=steps.get_feature_names_out(), index=X.index)
