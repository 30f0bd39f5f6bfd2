"""The bottom layer every other package may use: error types, the one registry class, atomic storage,
provenance and typed settings. Nothing here imports from the rest of the suite."""
