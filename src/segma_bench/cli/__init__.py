"""The command line: the only layer that speaks click and turns known failures into one line."""
