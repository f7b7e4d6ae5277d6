"""Pure torch.nn modules: no I/O, no training logic."""
