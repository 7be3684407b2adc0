"""An asset library from folders of photos: the batch and its operators (batch; the photo folder's scan is
client/photo_folder.py), `blender --command sam3d batch` (cli), the assets it writes (assets), and the allocator
tuning that keeps a long command-line batch's memory flat (allocator).
"""
