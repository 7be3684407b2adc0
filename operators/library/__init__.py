"""An asset library from folders of photos: the batch, its operators and `blender --command sam3d batch` (batch;
the photo folder's scan is client/photo_folder.py), the assets it writes (assets).
"""
