"""A scene laid out from a photo: the photo's camera, As in the Photo, its calibration, Set Real Size and
Re-layout (photo_camera; the fit itself is utils/calibration.py), Composite over Photo (composite).
"""
