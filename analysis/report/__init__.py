"""The sweep report (`python -m analysis.report DIR`, built by `build`): the whole analysis
(`pipeline`), the claims and scaling-law sections (`claims`, `law`) and their figures
(`plots`, `plots_claims`, `plots_law`)."""
