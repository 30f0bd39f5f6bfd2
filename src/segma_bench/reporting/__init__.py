"""How tables are made: budgets, the `reproduce` grid and its launchers, one JSON record per cell, and the
pandas aggregation that renders them next to the paper's numbers. The metrics themselves are in evaluation/."""
