"""One label index for the classifier and the dataset readers: a class id, a digit string,
an exact label, a unique comma-separated synonym (ImageNet: "cup" in "coffee mug, cup") or an
ImageNet wnid (``n03063599``, 1000-class models) -> class id."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from ..errors import BadInput

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

_WNID = re.compile(r"^n\d{8}$")


@cache
def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet-1k wnids in the standard sorted order (index = class id)."""
    return (DATA_DIR / "imagenet_wnids.txt").read_text().split()


class LabelIndex:
    """Resolve label strings to class ids for one label list (index = class id)."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self.exact: dict[str, int] = {}
        syn: dict[str, list[int]] = {}
        for i, lab in enumerate(self.labels):
            self.exact.setdefault(lab.strip().lower(), i)
            for s in lab.split(","):
                ids = syn.setdefault(s.strip().lower(), [])
                if i not in ids:  # a synonym repeated within one label is still unique
                    ids.append(i)
        self.syn = {k: v[0] for k, v in syn.items() if len(v) == 1}
        self._wnid: dict[str, int] | None = None

    def resolve(self, label: str, where: str, param: str | None = None) -> int | None:
        """Class id of ``label``; None when unknown (the caller decides).  BadInput (about
        ``where``, parameter ``param``) for an id out of range or a wnid on a model that is
        not ImageNet-1k."""
        s = str(label).strip()
        if s.lstrip("-").isdigit():
            idx = int(s)
            if not 0 <= idx < len(self.labels):
                raise BadInput(f"{where}: class id {idx} out of range, expected "
                               f"0..{len(self.labels) - 1}", param=param)
            return idx
        key = s.lower()
        if key in self.exact:
            return self.exact[key]
        if key in self.syn:
            return self.syn[key]
        if _WNID.match(s):
            if self._wnid is None:
                self._wnid = {w: i for i, w in enumerate(imagenet_wnids())}
            if s in self._wnid:
                if len(self.labels) != 1000:
                    raise BadInput(f"{where}: ImageNet wnid {s} needs a 1000-class ImageNet "
                                   f"model, this one has {len(self.labels)} classes",
                                   param=param)
                return self._wnid[s]
        return None

    def require(self, label: str, where: str, skip_unknown: bool, param: str = "dataset"
                ) -> int | None:
        """:meth:`resolve`, with BadInput for an unknown label unless ``skip_unknown``."""
        idx = self.resolve(label, where)
        if idx is None and not skip_unknown:
            shown = ", ".join(self.labels[:5]) + (", ..." if len(self.labels) > 5 else "")
            raise BadInput(f"{where}: unknown label {label!r}; expected a class id "
                           f"0..{len(self.labels) - 1} or one of the model's labels ({shown})",
                           param=param)
        return idx
