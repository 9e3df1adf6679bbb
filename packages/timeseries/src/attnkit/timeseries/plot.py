"""Plot one series: observed values, held-out truth and imputations."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["plot_imputation"]


def plot_imputation(observed: np.ndarray, imputed: np.ndarray, truth: np.ndarray | None = None,
                    *, feature: int = 0, name: str | None = None, path: str | os.PathLike[str] | None = None,
                    ) -> object:
    """Plot feature ``feature`` of one series.

    Args:
        observed: ``(T, F)`` input with NaN where missing (held-out values removed).
        imputed: ``(T, F)`` model output (observed values kept, gaps filled).
        truth: ``(T, F)`` optional ground truth of the held-out values (NaN elsewhere).
        feature: which column to draw.
        name: the feature's name for the title.
        path: save the figure there (PNG/PDF by suffix) when given.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    t = np.arange(observed.shape[0])
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.plot(t, imputed[:, feature], color="tab:blue", lw=1, label="imputation")
    obs = ~np.isnan(observed[:, feature])
    ax.scatter(t[obs], observed[obs, feature], s=12, color="black", label="observed", zorder=3)
    if truth is not None:
        held = ~np.isnan(truth[:, feature])
        ax.scatter(t[held], truth[held, feature], s=30, facecolors="none", edgecolors="tab:red",
                   label="held-out truth", zorder=4)
    ax.set_xlabel("step")
    ax.set_title(name or f"feature {feature}")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig
