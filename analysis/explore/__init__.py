"""The interactive Pareto explorer (`python -m analysis.explore DIR`): the views and page
(`views`) and their Plotly figures (`figures`)."""
