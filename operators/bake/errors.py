"""The one exception of Bake to Texture and the Triangle Budget: a sentence for a person."""


class BakeError(RuntimeError):
    """A foreseeable reason the bake cannot be done, as one sentence for a person."""
