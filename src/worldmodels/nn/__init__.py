"""Neural-network building blocks shared by the agents."""

from .heads import BinaryOutput, Head, MSEOutput, SymlogMSEOutput, TwoHotOutput
from .layers import MLP, ConvDecoder, ConvEncoder, Dense, image_to_float, make_act, make_norm

__all__ = [
    "MLP",
    "BinaryOutput",
    "ConvDecoder",
    "ConvEncoder",
    "Dense",
    "Head",
    "MSEOutput",
    "SymlogMSEOutput",
    "TwoHotOutput",
    "image_to_float",
    "make_act",
    "make_norm",
]
