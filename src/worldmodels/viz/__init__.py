"""Looking at a trained model: ``worldmodels dream`` (:mod:`.dream`) and its videos
(:mod:`.video`). Needs the ``viz`` extra (matplotlib, imageio, imageio-ffmpeg)."""
