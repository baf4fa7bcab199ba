"""The face layer: find faces in a photo (detect.py), map them into the canonical frame and
back (align.py, paste.py), and compare identities (identity.py). models.py loads the dlib
model files that pip packages ship."""
