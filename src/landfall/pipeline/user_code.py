"""The pipeline's own code: imported from its code folder (`code_path`, default the project's
`pipelines/`) by its plain module name, when a task or the scoring service needs it - never when a DAG
file is parsed. What it raises is the user's: `UserCodeError` carries their traceback and says what to
fix, and the task that hit it fails without a retry (the same code would fail the same way).
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path
from typing import Any


class UserCodeError(RuntimeError):
    """The pipeline's own code (its trainer, estimator or features function) raised or answered wrongly;
    the message holds what it raised and the traceback, and says what to fix."""


def use_code_root(code_root: Path | None) -> None:
    """Put the pipeline's code folder first on sys.path: its modules import by their plain names, and
    skops finds the pipeline's own estimator classes there when it loads a model."""
    if code_root is not None and str(code_root) not in sys.path:
        sys.path.insert(0, str(code_root))


def import_from(spec: str, code_root: Path | None) -> Any:
    """The object `spec` names (`module:attribute` or `module.Attribute`), imported with the pipeline's
    code folder first on sys.path."""
    module_name, sep, attribute = spec.partition(":")
    if not sep:
        module_name, _, attribute = spec.rpartition(".")
    use_code_root(code_root)
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attribute)
    except (ImportError, AttributeError) as error:
        where = f" (code folder {code_root})" if code_root is not None else ""
        raise UserCodeError(
            f"{spec!r} cannot be imported{where}: {type(error).__name__}: {error}\n{traceback.format_exc()}"
        ) from error
    except Exception as error:  # the module itself raised while importing
        raise UserCodeError(
            f"importing {module_name!r} raised {type(error).__name__}: {error}\n{traceback.format_exc()}"
        ) from error
