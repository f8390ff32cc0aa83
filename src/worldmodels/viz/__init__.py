"""Looking at a trained model: ``worldmodels dream`` (:mod:`.dream`) and its videos
(:mod:`.video`), ``worldmodels report`` (:mod:`.report`) and ``worldmodels play-dream``
(:mod:`.play_dream`). Needs the ``viz`` extra (matplotlib, imageio, imageio-ffmpeg,
websockets)."""
