"""The exact types systpipe's own ``.skops`` model files contain beyond skops' safe defaults.

skops refuses on load every type that is not in its own list of safe types unless the caller
trusts it. Trusting by module prefix (``sklearn.``, ``numpy.``) is not safe: those packages hold
functions that run code when called, e.g. ``numpy.testing._private.utils.runstring`` (it calls
``exec``), and a skops file can call a function on load (``ConstructorFromReduceNode``). So
systpipe trusts exactly the type names its own models contain and nothing else.

:data:`SKOPS_TYPES` is what ``skops.io.get_untrusted_types`` reports for fresh models of every
scikit-learn type systpipe saves: ``hgb`` (HistGradientBoosting, with and without early
stopping), ``rf`` and the other forests, and the import-path estimators of the test suite
(:data:`SKOPS_REFERENCE_TYPES`). ``tests/unit/test_models.py::test_skops_types_match_fresh_models``
regenerates the set from fresh models and fails, printing the new set, when a scikit-learn or
skops upgrade changes it: review the new names (a function or a class whose construction runs
code must never be added) and update the constant here, the one place it is kept.

Example:
    >>> sorted(SKOPS_TYPES)[0]
    'sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor'
"""

from __future__ import annotations

#: Type names (``module.QualName``) beyond skops' defaults that systpipe's model files contain.
SKOPS_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.tree._tree.Tree",
    }
)

#: ``classifiers[].type`` values (with ``params``) whose fresh models define :data:`SKOPS_TYPES`.
SKOPS_REFERENCE_TYPES: tuple[tuple[str, dict[str, object]], ...] = (
    ("hgb", {"max_iter": 5}),
    ("hgb", {"max_iter": 5, "early_stopping": True}),
    ("rf", {"n_estimators": 3}),
    ("rf", {"n_estimators": 25, "oob_score": True, "max_samples": 0.5}),
    ("sklearn.ensemble:ExtraTreesClassifier", {"n_estimators": 3}),
    ("sklearn.linear_model:LogisticRegression", {}),
)

__all__ = ["SKOPS_REFERENCE_TYPES", "SKOPS_TYPES"]
