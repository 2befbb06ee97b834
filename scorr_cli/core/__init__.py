"""Pure torch: the MRFA networks, motion-transfer math, the inference engine and training losses.

Nothing in this package reads or writes files or imports the CLI.
"""
