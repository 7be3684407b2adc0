"""The add-on's pure code beside client/: geometry, rasters and the photo camera's calibration, and the schema of
what the add-on writes into a .blend. Nothing here imports bpy or the rest of the add-on (tests/utils runs it
without Blender); the Blender side (operators/, panels/) calls it. Its sentences are English, as client/'s are.
"""
