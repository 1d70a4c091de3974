"""Typed settings: `config/landfall.yaml`, overridden by `LANDFALL_<SECTION>__<KEY>` environment variables.

This is the only module that reads configuration. Everything else asks `get_settings(pipeline)` for one
pipeline's view (`Settings`: the shared sections with that pipeline's own) or `get_project()` for the
whole project. Reading one small local YAML file is the only I/O it does, so DAG files may call it at
parse time.

A project holds any number of pipelines (`pipelines:`, name -> block). Each pipeline block is validated
on its own: one invalid pipeline is reported under its name and leaves the others usable
(`load_project(strict=False)`, what the DAG files do), while `landfall up` and `landfall check` refuse a
project with any error (`strict=True`).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import PrivateAttr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from landfall.core.catalog import Chain, chain_of
from landfall.core.kubernetes_settings import ComputeSettings
from landfall.core.paths import DEFAULT_CONFIG_FILE, PIPELINES_FOLDER
from landfall.core.pipeline_settings import (
    PIPELINE_NAME,
    DeploySettings,
    LandingSettings,
    MlflowSettings,
    MonitoringSettings,
    PipelineSettings,
    TrainingSettings,
)
from landfall.core.sections import Section
from landfall.core.serving_settings import ServingSettings
from landfall.core.shared_settings import (
    OWNED_PREFIXES,
    IngestSettings,
    NotifySettings,
    SharedStorage,
    StorageSettings,
    WatcherSettings,
)
from landfall.core.stack_settings import StackSettings

ENV_PREFIX = "LANDFALL_"


class ConfigError(ValueError):
    """Configuration is invalid; the message names each bad key and what is wrong with it."""


class Settings(Section):
    """One pipeline's view of the settings: the shared sections and the pipeline's own, resolved."""

    pipeline: str
    storage: StorageSettings
    landing: LandingSettings
    watcher: WatcherSettings
    ingest: IngestSettings
    mlflow: MlflowSettings
    training: TrainingSettings
    deploy: DeploySettings
    monitoring: MonitoringSettings
    compute: ComputeSettings
    notify: NotifySettings
    serving: ServingSettings
    stack: StackSettings
    # The pipeline's own code (python: trainers and features, estimator classes): `code_path` resolved
    # against the config file's folder; unset, $LANDFALL_CODE_ROOT (the images set it), else the
    # project's `pipelines/` folder.
    code_root: Path
    # The pipeline's `code_path` as written (relative to the config file), for a process that resolves it
    # against its own copy of the config: a trainer pod, against the image's.
    code_path: str | None = None
    features: str  # "schema" or python:<module>:<function> (landfall.pipeline.features)

    @property
    def names(self) -> Chain:
        """The pipeline's DAG ids, asset names and pool."""
        return chain_of(self.pipeline)


class ProjectSettings(BaseSettings):
    """All of Landfall's settings. Build it with `load_project()` / `get_project()`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    storage: SharedStorage = SharedStorage()
    watcher: WatcherSettings = WatcherSettings()
    ingest: IngestSettings = IngestSettings()
    compute: ComputeSettings = ComputeSettings()
    notify: NotifySettings = NotifySettings()
    serving: ServingSettings = ServingSettings()
    stack: StackSettings = StackSettings()
    pipelines: dict[str, PipelineSettings] = {}
    # Pipelines whose block is invalid: name -> what is wrong, each line naming its key (not a config key).
    _broken: dict[str, list[str]] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments > environment > YAML file.
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls, yaml_file=config_file()))

    @model_validator(mode="wrap")
    @classmethod
    def _each_pipeline_on_its_own(cls, data: Any, handler: Any) -> ProjectSettings:
        """Validate every pipeline block alone, so that one invalid pipeline is named and set aside
        while the rest of the project loads; then the checks that span pipelines."""
        if not isinstance(data, dict) or not isinstance(data.get("pipelines"), dict):
            return handler(data)
        valid: dict[str, PipelineSettings] = {}
        broken: dict[str, list[str]] = {}
        for name, block in data["pipelines"].items():
            if not PIPELINE_NAME.match(str(name)):
                broken[str(name)] = [
                    f"pipelines.{name}: {name!r} is not a pipeline name (lower-case letters, digits and "
                    "single _, starting with a letter, at most 40): it becomes part of DAG ids and variable "
                    "names"
                ]
                continue
            try:
                valid[name] = PipelineSettings.model_validate(block)
            except ValidationError as error:
                broken[name] = describe_errors(error, ("pipelines", name))
        for name, problems in _cross_pipeline_problems(data.get("storage"), valid).items():
            valid.pop(name, None)
            broken.setdefault(name, []).extend(problems)
        project = handler({**data, "pipelines": valid})
        project._broken = broken
        return project

    @property
    def broken(self) -> dict[str, list[str]]:
        """Invalid pipelines, each with its problems (every line names the key and the fix)."""
        return dict(self._broken)

    def set_aside(self, name: str, *problems: str) -> None:
        """Say why pipeline `name` is invalid, in place of what its validation said."""
        self._broken[name] = list(problems)

    def problems(self) -> list[str]:
        return [line for lines in self._broken.values() for line in lines]

    def settings_for(self, name: str) -> Settings:
        """The view of one (valid) pipeline."""
        if name in self._broken:
            raise ConfigError(f"pipeline {name!r} is invalid:\n" + "\n".join(self._broken[name]))
        if name not in self.pipelines:
            raise ConfigError(f"no pipeline {name!r} in {config_file()}; the pipelines are {self.names()}")
        block = self.pipelines[name]
        return Settings(
            pipeline=name,
            storage=StorageSettings(
                **self.storage.model_dump(exclude={"ledger_prefix"}),
                **block.storage.model_dump(exclude=set(OWNED_PREFIXES)),
                **block.storage.prefixes(name, self.storage.ledger_prefix),
            ),
            landing=block.landing,
            watcher=self.watcher,
            ingest=self.ingest,
            mlflow=MlflowSettings(
                model_name=block.mlflow.model_name or f"landfall-{name}",
                experiment=block.mlflow.experiment or f"landfall-{name}",
            ),
            training=block.training,
            deploy=block.deploy,
            monitoring=block.monitoring,
            compute=self.compute,
            notify=self.notify,
            serving=self.serving,
            stack=self.stack,
            code_root=code_root(block.code_path),
            code_path=block.code_path,
            features=block.features,
        )

    def names(self) -> list[str]:
        """The valid pipelines, in config order."""
        return list(self.pipelines)

    def all_settings(self) -> list[Settings]:
        return [self.settings_for(name) for name in self.pipelines]


def _overlap(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


class _Claim(NamedTuple):
    """One value a pipeline holds alone: a prefix, a registered model, an experiment."""

    owner: str  # a pipeline's name, or "" for the shared storage section
    key: str
    value: str

    @property
    def where(self) -> str:
        return f"pipelines.{self.owner}.{self.key}" if self.owner else self.key


def _cross_pipeline_problems(shared: Any, pipelines: dict[str, PipelineSettings]) -> dict[str, list[str]]:
    """What pipelines cannot share: a prefix (or one inside another: the watcher of one would see the
    other's files), a registered model or an experiment. Pipelines are taken in config order and a
    clash sets aside the later one, naming the earlier: adding a pipeline never stops one that runs."""
    try:
        storage = SharedStorage.model_validate(shared or {})
    except ValidationError:
        storage = SharedStorage()  # its own error is reported by the project's validation
    accepted = [_Claim("", "storage.xcom_prefix", storage.xcom_prefix)]
    problems: dict[str, list[str]] = {}
    for name, block in pipelines.items():
        mine = [
            _Claim(name, f"storage.{key}", prefix)
            for key, prefix in block.storage.prefixes(name, storage.ledger_prefix).items()
        ]
        names = [
            _Claim(name, "mlflow.model_name", block.mlflow.model_name or f"landfall-{name}"),
            _Claim(name, "mlflow.experiment", block.mlflow.experiment or f"landfall-{name}"),
        ]
        clashes = [
            (claim, other, "overlaps")
            for index, claim in enumerate(mine)
            for other in [*accepted, *mine[:index]]
            if _overlap(claim.value, other.value)
        ] + [
            (claim, other, "is also")
            for claim in names
            for other in accepted
            if other.key == claim.key and other.value == claim.value
        ]
        for claim, other, verb in clashes:
            variable = env_name(("pipelines", name, *claim.key.split(".")))
            problems.setdefault(name, []).append(
                f"  {claim.where}: {claim.value!r} {verb} {other.where} ({other.value!r}): give each its "
                f"own (set in {config_file()} or ${variable})"
            )
        if not clashes:
            accepted += [*mine, *names]
    return problems


def config_file() -> Path:
    return Path(os.environ.get("LANDFALL_CONFIG", DEFAULT_CONFIG_FILE))


def code_root(code_path: str | None) -> Path:
    """Where a pipeline's own code is: `code_path` relative to the config file, else $LANDFALL_CODE_ROOT,
    else the project's `pipelines/` folder."""
    if code_path:
        return (config_file().resolve().parent / code_path).resolve()
    return Path(os.environ.get("LANDFALL_CODE_ROOT") or PIPELINES_FOLDER)


def env_name(loc: tuple[Any, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc if isinstance(part, str))


_NAMED_KEY = re.compile(r"^Value error, ((?:[a-z_]+\.)+[a-z_]+)[ :]")


def describe_errors(error: ValidationError, within: tuple[str, ...] = ()) -> list[str]:
    """One line per problem: the key, what is wrong, and where to set it."""
    lines = []
    for issue in error.errors():
        loc = (*within, *issue["loc"])
        message = issue["msg"]
        # A check across sections names its key first ("deploy.min_score 2 is ..."): point at that key.
        if found := _NAMED_KEY.match(message):
            loc, message = (*loc, *found.group(1).split(".")), message.removeprefix("Value error, ")
        location = ".".join(str(part) for part in loc) or "(top level)"
        if issue["type"] == "extra_forbidden":
            message = "unknown key (misspelt, or in the wrong block?)"
        lines.append(f"  {location}: {message} (set in {config_file()} or ${env_name(loc)})")
    return lines


def load_project(*, strict: bool = True) -> ProjectSettings:
    """The whole project from file + environment. Strict (the default) raises ConfigError naming every
    problem; not strict, only a problem outside the pipeline blocks raises, and invalid pipelines are
    left out (`ProjectSettings.broken` names them)."""
    from landfall.core.legacy_config import refuse_single_pipeline_form

    path = config_file()
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist (set LANDFALL_CONFIG to the right path)")
    in_file = refuse_single_pipeline_form(path, os.environ).get("pipelines") or {}
    try:
        project = ProjectSettings()
    except ValidationError as error:
        raise ConfigError("invalid Landfall configuration:\n" + "\n".join(describe_errors(error))) from None
    for name in project.broken:
        if name not in in_file:  # only environment variables name it: say that, not what it lacks
            prefix = f"{ENV_PREFIX}PIPELINES__{name.upper()}__"
            variables = sorted(v for v in os.environ if v.upper().startswith(prefix))
            project.set_aside(
                name,
                f"  pipelines.{name}: no such pipeline in {path}, but {', '.join(variables)} set its keys "
                "(a misspelt pipeline name?)",
            )
    if not project.pipelines and not project.broken:
        raise ConfigError(
            f"no pipeline is configured in {path}: add a `pipelines:` block with one entry per model "
            "(config/landfall.yaml in the repository has one to copy)"
        )
    if strict and project.broken:
        raise ConfigError("invalid Landfall configuration:\n" + "\n".join(project.problems()))
    return project


def load_settings(pipeline: str | None = None) -> Settings:
    """One pipeline's settings from file + environment, raising ConfigError on any problem in the project.
    Without a name: the project's only pipeline (with several, name one)."""
    project = load_project()
    return project.settings_for(pipeline or only_pipeline(project))


def only_pipeline(project: ProjectSettings) -> str:
    names = project.names()
    if len(names) != 1:
        raise ConfigError(f"{len(names)} pipelines are configured ({', '.join(names)}): name one")
    return names[0]


@lru_cache(maxsize=2)
def get_project(*, strict: bool = True) -> ProjectSettings:
    """The process-wide project settings, loaded once. Strict: an invalid pipeline raises; not strict
    (the DAG files, and what every pipeline shares): invalid pipelines are set aside and named."""
    return load_project(strict=strict)


@lru_cache(maxsize=64)
def get_settings(pipeline: str | None = None) -> Settings:
    """The process-wide settings of one valid pipeline (without a name, the only one), loaded once. An
    invalid pipeline elsewhere in the project does not stop this one."""
    project = get_project(strict=False)
    return project.settings_for(pipeline or only_pipeline(project))
