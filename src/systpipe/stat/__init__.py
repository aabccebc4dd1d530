"""Statistics of the score templates: workspace, fast likelihood, fits, limits, toys.

Modules (imported directly; this package re-exports nothing so that importing one of them
does not pull in the others):

* :mod:`.workspace`: pyhf workspace of the templates (:func:`~.workspace.build_workspace`);
* :mod:`.likelihood`: the vectorised NumPy likelihood (:class:`~.likelihood.HistFactoryModel`);
* :mod:`.minimize`: iminuit minimisation and profile-likelihood intervals;
* :mod:`.fit`: the full profile-likelihood fit (:func:`~.fit.fit_workspace`, :class:`~.fit.FitResult`);
* :mod:`.limits`: discovery significance and CLs upper limits;
* :mod:`.binning`: the choice of threshold and binning by the expected uncertainty;
* :mod:`.chi2`: covariance-matrix chi2 with correlated systematic shifts;
* :mod:`.toys`: pseudo-experiments (coverage and challenge score of the interval methods).
* :mod:`.postprocess`: symmetrisation, smoothing and pruning of the systematic templates;
* :mod:`.smoothing`: ROOT's 353QH-twice smoothing (cabinetry's port);
* :mod:`.validation`: model checks of a workspace (CMS ValidateDatacards' list).
"""
