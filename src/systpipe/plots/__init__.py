"""Figures of systpipe.

``style`` holds the shared look (mplhep ATLAS-like style, colours, label, atomic saving),
``scan`` the figures of the threshold scan (AMS, uncertainty breakdown, score shapes, ROC,
luminosity projection) and ``fit`` those of the profile-likelihood fit (impacts, pulls,
correlations, pre-/post-fit distributions).
"""
