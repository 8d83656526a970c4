"""A stand-in for torchvision, for the open_clip tests only (tests/export/test_open_clip.py).

open_clip imports torchvision at import time (its transforms and `FrozenBatchNorm2d`), and
this machine has no CPU torchvision wheel. The open_clip model code never calls it; the
preprocessing transforms it builds are recorded (class name and arguments) so a test can read
the pipeline `create_model_and_transforms` configured, and they refuse to run.
"""
