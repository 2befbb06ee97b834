"""scorr: animate one portrait with the motion of a talking-head video (MRFA, NeurIPS 2023)."""

__version__ = "0.1.0"
