"""streamrec: the composition point that wires stream/, graph_store/ and model_server/ together."""
__version__ = "0.1.0"
