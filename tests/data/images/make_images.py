"""How the images here were made: Blender's own writers, one 13×7 image saved in each format Blender can
write (run with bpy 5.0.1: `.venv/blender-5.0/bin/python tests/data/images/make_images.py`). Kept as files so
that the header parser of client/imagesize.py is checked against real encoders on every Blender."""

from __future__ import annotations

from pathlib import Path

import bpy

HERE = Path(__file__).parent
WIDTH, HEIGHT = 13, 7
FORMATS = [("PNG", "png", {}), ("JPEG", "jpg", {}), ("BMP", "bmp", {}), ("TIFF", "tif", {}),
           ("OPEN_EXR", "exr", {}), ("HDR", "hdr", {}), ("TARGA", "tga", {}), ("TARGA_RAW", "raw.tga", {}),
           ("WEBP", "webp", {"quality": 80}), ("WEBP", "lossless.webp", {"quality": 100})]


def main() -> None:
    image = bpy.data.images.new("sample", WIDTH, HEIGHT, alpha=True)
    image.pixels.foreach_set([(i % 5) / 5 for i in range(WIDTH * HEIGHT * 4)])
    scene = bpy.context.scene
    for file_format, suffix, extra in FORMATS:
        settings = scene.render.image_settings
        settings.file_format = file_format
        for name, value in extra.items():
            setattr(settings, name, value)
        image.save_render(str(HERE / f"blender_{WIDTH}x{HEIGHT}.{suffix}"), scene=scene)


if __name__ == "__main__":
    main()
