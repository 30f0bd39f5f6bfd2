"""The paper's figures (Section VI, Figs. 3-8) and the class structure of Section V: `cli.py figures`."""
from .make import (
                   KINDS,
                   TABLE_KINDS,
                   FigureContext,
                   find_runs,
                   make_figures,
                   make_intensity,
                   make_interpolation,
                   make_means,
                   make_samples,
                   make_style_transfer,
                   make_table_figures,
)

__all__ = ["KINDS", "TABLE_KINDS", "FigureContext", "find_runs", "make_figures", "make_intensity",
           "make_interpolation", "make_means", "make_samples", "make_style_transfer", "make_table_figures"]
