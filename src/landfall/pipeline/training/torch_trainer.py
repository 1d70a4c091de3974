"""The PyTorch trainer (`training.model: torch`, `pip install landfall[torch]`).

The same network as the default scikit-learn MLP (standardised inputs, one hidden ReLU layer, a logistic
output) and the same grid knobs: learning_rate, batch_size, hidden_units and optimizer (adam, adamw, sgd
with momentum). It trains on CUDA when a GPU is visible (a GPU pod), else on the CPU. The model is logged
to MLflow as a pyfunc whose weights are a plain `state_dict` file beside a JSON description; Landfall
loads it from those two files (`landfall.pipeline.training.models`), never through the pickled pyfunc,
and gets an object with predict/predict_proba, like the scikit-learn pipeline.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

try:
    import torch
    from torch import nn
except ImportError as error:  # pragma: no cover - depends on the optional extra
    raise ImportError(
        "training.model is 'torch' but PyTorch is not installed: pip install 'landfall[torch]'"
    ) from error

import mlflow.pyfunc

WEIGHTS_FILE = "weights.pt"
META_FILE = "meta.json"


def _network(inputs: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def _optimizer(name: str, parameters: Any, learning_rate: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(parameters, lr=learning_rate)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=1e-2)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=learning_rate, momentum=0.9)
    raise ValueError(f"optimizer {name!r} is not one of adam, adamw, sgd")


class TorchClassifier:
    """A trained network with its input scaling; predict/predict_proba like a scikit-learn classifier."""

    def __init__(self, network: nn.Module, columns: list[str], mean: np.ndarray, scale: np.ndarray) -> None:
        self.network, self.columns, self.mean, self.scale = network.eval(), columns, mean, scale
        self.device_name = str(next(network.parameters()).device)

    def _inputs(self, frame: pd.DataFrame) -> torch.Tensor:
        values = (frame[self.columns].to_numpy(np.float32) - self.mean) / self.scale
        return torch.from_numpy(values.astype(np.float32)).to(next(self.network.parameters()).device)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        with torch.no_grad():
            positive = torch.sigmoid(self.network(self._inputs(frame))).squeeze(1).cpu().numpy()
        return np.column_stack([1 - positive, positive])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        # Strictly above one half, as scikit-learn decides a binary MLP (and the scoring service's argmax).
        return (self.predict_proba(frame)[:, 1] > 0.5).astype("int64")

    def save(self, folder: Path) -> dict[str, str]:
        torch.save({k: v.cpu() for k, v in self.network.state_dict().items()}, folder / WEIGHTS_FILE)
        hidden = int(self.network[0].out_features)
        meta = {
            "columns": self.columns,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "hidden": hidden,
        }
        (folder / META_FILE).write_text(json.dumps(meta))
        return {"weights": str(folder / WEIGHTS_FILE), "meta": str(folder / META_FILE)}

    @classmethod
    def load(cls, weights: str, meta_path: str) -> TorchClassifier:
        meta = json.loads(Path(meta_path).read_text())
        network = _network(len(meta["columns"]), meta["hidden"])
        # weights_only: tensors only, never arbitrary pickled objects.
        network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return cls(
            network, meta["columns"], np.array(meta["mean"], np.float32), np.array(meta["scale"], np.float32)
        )


def fit(
    train: pd.DataFrame, label: str, params: dict[str, Any], max_epochs: int, seed: int = 0
) -> TorchClassifier:
    torch.manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    features = train.drop(columns=[label])
    values = features.to_numpy(np.float32)
    mean, scale = values.mean(axis=0), values.std(axis=0)
    scale[scale == 0] = 1.0
    inputs = torch.from_numpy(((values - mean) / scale).astype(np.float32)).to(device)
    targets = torch.from_numpy(train[label].to_numpy(np.float32)).unsqueeze(1).to(device)
    network = _network(inputs.shape[1], int(params["hidden_units"])).to(device)
    optimizer = _optimizer(str(params["optimizer"]), network.parameters(), float(params["learning_rate"]))
    loss_of = nn.BCEWithLogitsLoss()
    batch_size = int(params["batch_size"])
    generator = torch.Generator(device="cpu").manual_seed(seed)
    network.train()
    for _epoch in range(max_epochs):
        order = torch.randperm(len(inputs), generator=generator).to(device)
        for start in range(0, len(inputs), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = loss_of(network(inputs[batch]), targets[batch])
            loss.backward()
            optimizer.step()
    return TorchClassifier(network, list(features.columns), mean, scale)


class TorchChurnModel(mlflow.pyfunc.PythonModel):
    """The MLflow pyfunc wrapper: `predict` answers the positive-class probability."""

    def load_context(self, context: Any) -> None:
        self.classifier = TorchClassifier.load(context.artifacts["weights"], context.artifacts["meta"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        return self.classifier.predict_proba(model_input)[:, 1]


def log_torch_model(model: TorchClassifier, pip_requirements: list[str] | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="landfall-torch-") as folder:
        mlflow.pyfunc.log_model(
            name="model",
            python_model=TorchChurnModel(),
            artifacts=model.save(Path(folder)),
            pip_requirements=pip_requirements,
        )
