"""The models the API serves, as the protocol shows them: name, version, input and output tensors.

Each model has one version, ``"1"``: a live change of variant (fp32 → int8) keeps the model's name,
version and signature, so clients need not follow it. Entries are cached per model and dropped when
the server reports a change of that model (added, removed, variant swapped), so the hot path is a
dictionary lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.errors import ModelNotFound
from workbench.http.errors import HTTPError
from workbench.models.signature import Signature, TensorSpec

VERSION = "1"


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One served model as the API shows it."""

    name: str
    version: str
    input: TensorSpec
    output: TensorSpec
    variant: str = ""

    def metadata(self, info: dict[str, Any] | None = None) -> dict[str, Any]:
        """OIP model metadata (-1 stands for the batch dimension); ``parameters`` carry the served
        variant and serve config from the runtime's ``info`` when given."""
        info = info or {}
        return {
            "name": self.name, "versions": [self.version], "platform": "workbench",
            "inputs": [_tensor(self.input)], "outputs": [_tensor(self.output)],
            "parameters": {"variant": info.get("variant", self.variant), "config": info.get("config", {}),
                           "ready": bool(info.get("ready", False))},
        }


def _tensor(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": [-1, *spec.shape]}


class ModelTable:
    """Looks models up on a serving ``Server`` and caches what the API needs of each."""

    def __init__(self, server: Any):
        self._server = server
        self._entries: dict[str, ModelEntry] = {}
        self._unsubscribe = server.subscribe_changes(self._on_change)

    def _on_change(self, change: Any) -> None:
        self._entries.pop(change.model, None)

    def close(self) -> None:
        self._unsubscribe()

    def names(self) -> list[str]:
        return list(self._server.models())

    def get(self, name: str, version: str | None = None) -> ModelEntry:
        """The entry of ``name`` (and ``version``, if given); HTTPError 404 naming what exists otherwise."""
        entry = self._entries.get(name)
        if entry is None:
            info = self.info(name)
            signature = Signature.from_dict(info["signature"])
            entry = ModelEntry(name=name, version=VERSION, input=signature.input, output=signature.output,
                               variant=str(info.get("variant", "")))
            self._entries[name] = entry
        if version is not None and version != entry.version:
            raise HTTPError(404, f"model {name!r} has no version {version!r}; versions: [{VERSION!r}]")
        return entry

    def ready(self, name: str) -> bool:
        return bool(self.info(name).get("ready"))

    def info(self, name: str) -> dict[str, Any]:
        try:
            return self._server.model_info(name)
        except ModelNotFound:
            raise HTTPError(404, f"unknown model {name!r}; served: {', '.join(self.names()) or 'none'}") from None

    def stats(self) -> dict[str, Any]:
        return self._server.stats()


__all__ = ["VERSION", "ModelEntry", "ModelTable"]
