"""`python -m landfall.pipeline.training ...`: one trial, the entrypoint of the trainer image."""

import sys

from landfall.pipeline.training.trainer import main

if __name__ == "__main__":
    main(sys.argv[1:])
