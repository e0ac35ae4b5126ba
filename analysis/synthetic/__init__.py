"""Planted surfaces to check the estimators before spending compute: synthetic sweep tables
(`trials`) and the law sweep's estimator study (`law`, `python -m analysis.synthetic.law`)."""
