"""``python -m mlapi.prediction_log copy SOURCE [TARGET]``: copy a log into an empty one.

For users of an SQLite log moving to PostgreSQL: every prediction and feedback, oldest first,
in batches. TARGET defaults to ``MLAPI_PREDICTION_LOG_URL``, so that a password need not be on
the command line. A source of an older schema is migrated first, as the service would.
"""

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Final

from mlapi.prediction_log import PredictionLog, PredictionLogError, open_prediction_log
from mlapi.settings import ENV_PREFIX

#: Rows read and written per batch.
COPY_BATCH: Final = 5000


def copy_log(
    source: PredictionLog, target: PredictionLog, batch: int = COPY_BATCH
) -> dict[str, int]:
    """Copy every prediction and feedback of ``source`` into the empty ``target``; returns
    the rows copied per table."""
    if any(target.counts().values()):
        raise PredictionLogError(f"{target.location} is not empty: copy into a new log")
    copied = {"predictions": 0, "feedback": 0}
    after = 0
    while predictions := source.stored_predictions(after, batch):
        target.insert_predictions([row for _, row in predictions])
        after, copied["predictions"] = predictions[-1][0], copied["predictions"] + len(predictions)
    after = 0
    while feedback := source.stored_feedback(after, batch):
        copied["feedback"] += target.insert_feedback([row for _, row in feedback])
        after = feedback[-1][0]
    return copied


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m mlapi.prediction_log")
    commands = parser.add_subparsers(dest="command", required=True)
    copy = commands.add_parser("copy", help="copy every prediction and feedback into an empty log")
    copy.add_argument("source", help="the log to copy: sqlite:///PATH or postgresql://...")
    copy.add_argument(
        "target",
        nargs="?",
        default=os.environ.get(f"{ENV_PREFIX}PREDICTION_LOG_URL"),
        help=f"the empty log to copy into (default: ${ENV_PREFIX}PREDICTION_LOG_URL)",
    )
    args = parser.parse_args(argv)
    if not args.target:
        parser.error(f"no target: name one, or set {ENV_PREFIX}PREDICTION_LOG_URL")
    try:
        source = open_prediction_log(args.source)
        try:
            target = open_prediction_log(args.target)
            try:
                copied = copy_log(source, target)
            finally:
                target.close()
        finally:
            source.close()
    except PredictionLogError as exc:
        print(f"mlapi.prediction_log: {exc}", file=sys.stderr)
        return 1
    print(
        f"copied {copied['predictions']} predictions and {copied['feedback']} feedbacks"
        f" from {source.location} to {target.location}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
