"""Real pretrained recognisers that ship inside PyPI packages (no downloads): the world's judges.

Face detection: OpenCV's Haar frontal cascade (``opencv-python-headless<5``). Face identity:
dlib's ResNet (``dlib-bin`` + ``face_recognition_models``). Voice identity: resemblyzer.
Each is loaded once per process and imported lazily, with an install hint when missing.
"""
