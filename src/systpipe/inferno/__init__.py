"""Inference-aware training (INFERNO): a network whose loss is the expected variance of mu.

torch is an optional dependency (``pip install systpipe[nn]``); it is imported only inside the
functions that train. Scoring a saved model needs numpy only.
"""
