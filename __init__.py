"""SAM 3D Objects for Blender: a photo and a mask in, a clean 3D object in the scene out."""

from __future__ import annotations

from . import operators, panels, preferences, properties, translations

_modules = (translations, preferences, properties, operators, panels)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
