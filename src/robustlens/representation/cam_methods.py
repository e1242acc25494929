"""The CAM methods: names in configs and flags, display names for people, folder names.

Light on purpose (no torch): the report and the study layout read it too.
"""

from __future__ import annotations

from ..errors import BadInput

__all__ = ["CAM_METHODS", "CAM_NAMES", "cam_name", "check_cam_method"]

#: method names as given to ``--cam`` / ``representation.cams``, default first
CAM_METHODS: tuple[str, ...] = ("gradcam++", "gradcam", "scorecam", "smooth")
#: how people write them: headings and titles show these, never folder slugs
CAM_NAMES: dict[str, str] = {"gradcam++": "Grad-CAM++", "gradcam": "Grad-CAM",
                             "scorecam": "Score-CAM", "smooth": "Smooth Grad-CAM++"}
_ALIASES = {"gradcampp": "gradcam++", "grad-cam++": "gradcam++", "grad-cam": "gradcam",
            "score-cam": "scorecam", "smoothgradcam++": "smooth"}


def check_cam_method(method: str) -> str:
    """Canonical CAM method name; BadInput for an unknown one."""
    m = str(method).strip().lower()
    m = _ALIASES.get(m, m)
    if m not in CAM_METHODS:
        raise BadInput(f"{method!r}: unknown CAM method; expected one of "
                       f"{', '.join(CAM_METHODS)}", param="cam")
    return m


def cam_name(method: str) -> str:
    """``gradcam++`` (or its folder name ``gradcampp``) -> ``Grad-CAM++``; unknown names are
    returned as they are."""
    m = _ALIASES.get(str(method).strip().lower(), str(method).strip().lower())
    return CAM_NAMES.get(m, str(method))
