"""The estimator rule (scikit-learn's): ``__init__`` stores its named parameters as they are,
``run()`` validates them (so ``set_params`` between runs is checked like the constructor),
results are attributes ending in ``_``; :meth:`Estimator.get_params` /
:meth:`Estimator.set_params` read and change the parameters by name.
"""

from __future__ import annotations

import inspect
from typing import Any

from .errors import BadInput


class Estimator:
    """Base of the estimators (``SemanticMap``, ``ClassRobustness``): parameters are the
    named arguments of ``__init__`` (no ``*args`` / ``**kwargs``), each stored under its own
    name; a subclass validates them in ``check()``, which its ``run()`` calls first."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        names = []
        for p in sig.parameters.values():
            if p.name == "self":
                continue
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"{cls.__name__}: an estimator names its parameters "
                                f"(no *{p.name})")
            names.append(p.name)
        return names

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The parameters, ``{name: value}``, as given (``deep`` is accepted for
        scikit-learn's signature; no parameter is itself an estimator)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Any:
        """Change parameters by name; returns the estimator. Values are checked by the next
        ``run()`` (or ``check()``); an unknown name is BadInput at once."""
        names = self._param_names()
        for name, value in params.items():
            if name not in names:
                raise BadInput(f"{name!r}: not a parameter of {type(self).__name__} "
                               f"(expected one of {', '.join(names)})")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        args = [f"{k}={v!r}" for k, v in self.get_params().items()
                if sig.parameters[k].default is inspect.Parameter.empty
                or not _same(v, sig.parameters[k].default)]
        return f"{type(self).__name__}({', '.join(args)})"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a is b or a == b)
    except Exception:  # arrays and the like: shown
        return False


def check_int(value: Any, param: str, low: int, what: str | None = None) -> int:
    """``value`` as an int >= ``low`` (bools and floats refused); BadInput with ``param``."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise BadInput(f"{value!r}: expected {what or f'an integer >= {low}'}", param=param)
    return int(value)
