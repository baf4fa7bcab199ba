"""The face layer: find faces in a photo (detect.py, running detector passes from scan.py and
landmarks from landmarks.py), map them into the canonical frame and back (align.py,
paste.py: also the output scale and keeping a large face's own detail), and compare
identities (identity.py). models.py loads the dlib model files that pip packages ship."""
