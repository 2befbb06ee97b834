"""Optional fused GPU kernels; every one has a pure-torch reference in the module that uses it."""
