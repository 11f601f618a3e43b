"""Training: fit the pipeline on a data file, score it on a holdout, save it with its card.

python -m yield_model.train --data s3://bucket/jinnan_round1_train_20181227.csv
python -m yield_model.train --data data/train.csv
python -m yield_model.train --generated

``--generated`` trains on the default generated training file, drawn in this run; the card
says so (``data.origin``), and a release refuses to publish such a model.
"""

import argparse
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from pydantic import ValidationError
from sklearn.ensemble import VotingRegressor
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from yield_model import __version__
from yield_model.card import (
    CrossValidation,
    DataSummary,
    InputQuality,
    InputRange,
    ModelCard,
    holdout_metrics,
    reference_statistics,
)
from yield_model.columns import FEATURE_COLUMNS, TARGET_COLUMN
from yield_model.config import MODEL_NAME, TRAINED_MODEL_DIR, TrainingConfig
from yield_model.data import Dataset, load_dataset
from yield_model.datasets import generated_training_set
from yield_model.drift import PREDICTED_YIELD
from yield_model.errors import YieldModelError
from yield_model.evaluation import cross_validate, plausible
from yield_model.persistence import save_model
from yield_model.pipeline import build_pipeline, engineered_frame


def train(dataset: Dataset, config: TrainingConfig) -> tuple[Pipeline, ModelCard]:
    """Score a pipeline on a holdout and by cross-validation, then refit it on every
    plausible row."""
    X = dataset.frame[list(FEATURE_COLUMNS)]
    y = dataset.frame[TARGET_COLUMN].to_numpy(np.float64)
    if len(y) < 10:
        raise YieldModelError(f"{dataset.source} has {len(y)} rows; training needs at least 10")
    train_idx, holdout_idx = train_test_split(
        np.arange(len(y)), test_size=config.holdout_share, random_state=config.seed
    )
    fit_idx = train_idx[plausible(y[train_idx], config)]
    scored = build_pipeline(config).fit(X.iloc[fit_idx], y[fit_idx])
    metrics = holdout_metrics(
        y[holdout_idx],
        np.asarray(scored.predict(X.iloc[holdout_idx]), np.float64),
        float(y[fit_idx].mean()),
    )

    cv = None if config.cv_folds is None else cross_validate(X, y, config, config.cv_folds)
    keep = plausible(y, config)
    pipeline = build_pipeline(config).fit(X[keep], y[keep])
    parser = pipeline.named_steps["parse"]
    _, report = parser.transform_with_report(X)
    engineered = engineered_frame(pipeline, X)
    reference = reference_statistics(engineered, config.reference_bins)
    predicted = np.asarray(pipeline.predict(X), np.float64)
    reference[PREDICTED_YIELD] = reference_statistics(
        pd.DataFrame({PREDICTED_YIELD: predicted}), config.reference_bins
    )[PREDICTED_YIELD]
    regressor = pipeline.named_steps["regressor"]
    if isinstance(regressor, Pipeline):
        regressor = regressor[-1]
    card = ModelCard(
        name=MODEL_NAME,
        version=__version__,
        description=describe_model(config, cv, dataset.source),
        trained_at=datetime.now(UTC),
        sklearn_version=sklearn.__version__,
        python_version=platform.python_version(),
        regressor=_describe(regressor),
        regressor_params={k: v for k, v in regressor.get_params(deep=True).items() if _scalar(v)},
        training_config=config.model_dump(),
        data=DataSummary(
            origin=dataset.origin,
            source=dataset.source,
            sha256=dataset.sha256,
            encoding=dataset.encoding,
            rows_read=len(y),
            rows_used_for_training=int(keep.sum()),
            rows_dropped_by_yield_filter=int((~keep).sum()),
            holdout_rows=len(holdout_idx),
        ),
        metrics=metrics,
        cross_validation=cv,
        input_features=list(FEATURE_COLUMNS),
        model_features=[str(n) for n in pipeline[:-1].get_feature_names_out()],
        input_quality=InputQuality(
            absent=report.absent, unparseable=report.unparseable, repaired=report.repaired
        ),
        reference=reference,
        input_ranges=_input_ranges(pipeline),
    )
    return pipeline, card


def describe_model(config: TrainingConfig, cv: CrossValidation | None, source: str) -> str:
    """The card's description: what the model is, how good, what it refuses to believe."""
    kinds = {
        "gbr_et": "the average of gradient boosting (500 trees of depth 3) and extremely "
        "randomised trees (100 trees of depth at most 16, leaves of at least 3 batches)",
        "gbr": "gradient boosting (500 trees of depth 3)",
        "et": "extremely randomised trees (100 trees of depth at most 16, leaves of at least "
        "3 batches)",
        "hgb": "histogram gradient boosting",
        "rf": "a random forest",
        "ridge": "ridge regression",
    }
    features = "the parsed inputs, the duration of each process step"
    if config.amount_ratio:
        features += ", B14 per material put in (A1, A3, A4, A19, B1, B12)"
    if config.target_encoding:
        features += ", target encodings of the low-cardinality inputs"
    text = f"Predicts a batch's yield with {kinds[config.regressor]} over {features}. "
    if config.min_yield is not None:
        text += f"Trained on batches with a yield above {config.min_yield:g}. "
    if cv is not None:
        text += (
            f"{cv.folds}-fold CV half-MSE on {source}: {cv.half_mse_mean:.7f} "
            f"± {cv.half_mse_sd:.7f} over the batches above the filter "
            f"({cv.all_rows_half_mse_mean:.7f} over every batch). "
        )
    return text + (
        "A numeric input beyond its training range widened by "
        f"{config.range_widening:g} of its width on each side (input_ranges) is not "
        "believed: it is treated as missing and named in the prediction's warnings."
    )


def _input_ranges(pipeline: Pipeline) -> dict[str, InputRange]:
    guard = pipeline.named_steps.get("guard")
    if guard is None:
        return {}
    return {
        name: InputRange(
            minimum=lo,
            maximum=hi,
            lowest=low if np.isfinite(low) else None,
            highest=high if np.isfinite(high) else None,
        )
        for name, (lo, hi, low, high) in guard.ranges().items()
    }


def _describe(regressor: Any) -> str:
    """The regressor's class, and its members' for an ensemble of estimators."""
    members = getattr(regressor, "estimators_", None)
    if isinstance(regressor, VotingRegressor) and members is not None:
        return f"{type(regressor).__name__}({', '.join(type(m).__name__ for m in members)})"
    return type(regressor).__name__


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | type(None))


def main(argv: list[str] | None = None) -> int:
    """Command line: train on a file or S3 object and save into the package."""
    parser = argparse.ArgumentParser(prog="python -m yield_model.train", description=__doc__)
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", help="local path or s3://bucket/key")
    data.add_argument(
        "--generated",
        action="store_true",
        help="the default generated training file (yield_model.datasets), drawn in this run; "
        "the card says the model was trained on generated data",
    )
    parser.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS)")
    parser.add_argument("--output-dir", type=Path, default=TRAINED_MODEL_DIR)
    parser.add_argument("--seed", type=int, default=TrainingConfig().seed)
    parser.add_argument("--regressor", default=TrainingConfig().regressor)
    parser.add_argument(
        "--min-yield",
        type=lambda s: None if s.lower() == "none" else float(s),
        default=TrainingConfig().min_yield,
        help="drop training rows with a yield at or below this ('none' keeps all)",
    )
    parser.add_argument(
        "--cv-folds",
        type=lambda s: None if s.lower() == "none" else int(s),
        default=TrainingConfig().cv_folds,
        help="folds of the cross-validation the card records ('none' skips it)",
    )
    args = parser.parse_args(argv)
    try:
        config = TrainingConfig(
            seed=args.seed,
            regressor=args.regressor,
            min_yield=args.min_yield,
            cv_folds=args.cv_folds,
        )
        if args.generated:
            dataset = generated_training_set()
        else:
            dataset = load_dataset(args.data, endpoint_url=args.endpoint_url)
        pipeline, card = train(dataset, config)
        path = save_model(pipeline, card, args.output_dir)
    except ValidationError as exc:
        print(f"error: invalid training settings: {exc}", file=sys.stderr)
        return 2
    except YieldModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    m = card.metrics
    print(
        f"saved {path} (version {card.version}); holdout half-MSE {m.half_mse:.6f}, "
        f"MAE {m.mae:.4f}, R² {m.r2:.3f} on {m.rows} rows "
        f"(training-mean baseline {m.mean_baseline_half_mse:.6f})"
    )
    if card.cross_validation is not None:
        cv = card.cross_validation
        print(
            f"{cv.folds}-fold CV half-MSE {cv.half_mse_mean:.7f} ± {cv.half_mse_sd:.7f} "
            f"(yields above the filter scored; every row: {cv.all_rows_half_mse_mean:.7f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
